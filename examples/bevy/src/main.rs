//! wgquant inside Bevy 0.20: the neural texture of `examples/neural_texture.rs` (a quantized
//! coordinate MLP) decoded on Bevy's own `RenderDevice` / `RenderQueue` every frame, by a
//! system in Bevy's `RenderGraph` schedule that records the wgquant GEMMs, the bias/ReLU
//! kernel and the draw into the frame's command encoder. A sprite shows the result.
//!
//! Build with `scripts/build-bevy-example.sh`; run with
//! `examples/bevy/target/release/wgquant-bevy-example [FORMAT]` (default q8_0).

#[allow(dead_code)]
#[path = "../../neural_texture/texture.rs"]
mod texture;

use bevy::{
    asset::RenderAssetUsages,
    core_pipeline::schedule::camera_driver,
    prelude::*,
    render::{
        render_asset::RenderAssets,
        render_resource::TextureUsages,
        renderer::{RenderContext, RenderDevice, RenderGraph, RenderQueue},
        texture::GpuImage,
        RenderApp, RenderStartup,
    },
};
use texture::{Encoding, Mlp, NeuralTexture, QuantMlp, TrainConfig};

const SIZE: u32 = 256;

/// The texture the decode draws into (main world: shown by the sprite; render world: the target).
#[derive(Resource, Clone)]
struct Target(Handle<Image>);

/// The quantized model, handed to the render world once.
#[derive(Resource)]
struct Model(QuantMlp, Encoding);

/// The prepared GPU decode (render world).
#[derive(Resource)]
struct Decoder(NeuralTexture);

fn main() {
    let format: wgquant::Format = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("q8_0")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    // Fit and quantize on the CPU before the app starts (about a second in release).
    let enc = Encoding::new(7 ^ 0x5eed);
    let (mlp, loss) = Mlp::train(&enc, &TrainConfig::default());
    let q = QuantMlp::quantize(&mlp, format).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "trained (MSE {loss:.5}), quantized to {format}: {} bytes",
        q.weight_bytes()
    );

    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: format!("wgquant neural texture ({format})"),
            resolution: (SIZE * 2, SIZE * 2).into(),
            ..default()
        }),
        ..default()
    }));

    let mut image = Image::new_target_texture(SIZE, SIZE, texture::TARGET_FORMAT, None);
    image.asset_usage = RenderAssetUsages::RENDER_WORLD;
    image.texture_descriptor.usage =
        TextureUsages::RENDER_ATTACHMENT | TextureUsages::TEXTURE_BINDING | TextureUsages::COPY_DST;
    let handle = app.world_mut().resource_mut::<Assets<Image>>().add(image);
    app.insert_resource(Target(handle.clone()))
        .add_systems(Startup, setup);

    app.sub_app_mut(RenderApp)
        .insert_resource(Target(handle))
        .insert_resource(Model(q, enc))
        .add_systems(RenderStartup, prepare_decoder)
        .add_systems(RenderGraph, decode.before(camera_driver));
    app.run();
}

fn setup(mut commands: Commands, target: Res<Target>) {
    commands.spawn(Camera2d);
    commands.spawn((
        Sprite {
            image: target.0.clone(),
            custom_size: Some(Vec2::splat(SIZE as f32 * 2.0)),
            ..default()
        },
        Transform::default(),
    ));
}

/// Once: wgquant on Bevy's device and queue (pipelines, weights, bind groups).
fn prepare_decoder(
    mut commands: Commands,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    model: Res<Model>,
) {
    let size = (SIZE as usize, SIZE as usize);
    let nt = NeuralTexture::new(
        device.wgpu_device(),
        &queue,
        &model.0,
        &model.1,
        size,
        (SIZE, SIZE),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    commands.insert_resource(Decoder(nt));
}

/// Every frame, before the cameras draw: record the decode into Bevy's command encoder.
fn decode(
    mut ctx: RenderContext,
    decoder: Option<Res<Decoder>>,
    target: Res<Target>,
    images: Res<RenderAssets<GpuImage>>,
) {
    let (Some(decoder), Some(image)) = (decoder, images.get(&target.0)) else {
        return; // not prepared yet (first frames)
    };
    decoder
        .0
        .encode_frame(ctx.command_encoder(), &image.texture_view);
}
