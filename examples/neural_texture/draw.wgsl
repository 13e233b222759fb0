// Fullscreen triangle that shows the decoded colours: the fragment shader reads the last
// layer's output (3 f32 per texel, row-major, y down) straight from the storage buffer,
// scaling the texture to whatever target it draws into.

struct View {
    tex_width: u32,
    tex_height: u32,
    target_width: u32,
    target_height: u32,
}

@group(0) @binding(0) var<storage, read> rgb: array<f32>;
@group(0) @binding(1) var<uniform> view: View;

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let x = f32((i << 1u) & 2u);
    let y = f32(i & 2u);
    return vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
}

@fragment
fn fs(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let tx = min(u32(pos.x * f32(view.tex_width) / f32(view.target_width)), view.tex_width - 1u);
    let ty = min(u32(pos.y * f32(view.tex_height) / f32(view.target_height)), view.tex_height - 1u);
    let p = (ty * view.tex_width + tx) * 3u;
    let c = vec3<f32>(rgb[p], rgb[p + 1u], rgb[p + 2u]);
    return vec4<f32>(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}
