//! Waiting for the GPU. A native thread can block until the GPU is done; a browser's page
//! cannot: WebGPU answers through promises that settle only once the page's code returns to
//! the event loop. So each wait is written once, as a future (`GpuContext::read_bytes_async`,
//! `verify::run_format_async`, `bench::run_async`, ...), and the blocking API native callers
//! use runs that future to completion here.

use crate::error::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Run `future` to completion. Natively this blocks the thread. On the web it polls once: a
/// future that needs no wait (building kernels: their validation errors are reported by the
/// next readback, [`pop_scope`]) finishes; one that must wait for the GPU is refused with
/// [`Error::NeedsAsync`] naming `async_name`, the function to await instead.
pub(crate) fn block_on<T>(async_name: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = async_name;
        pollster::block_on(future)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut future = std::pin::pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(r) => r,
            Poll::Pending => Err(Error::NeedsAsync(async_name.to_string())),
        }
    }
}

/// A value that a wgpu callback (a buffer mapped, submitted work done) delivers later.
pub(crate) struct Delivery<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// A callback to hand to wgpu and the future of the value it will be called with.
pub(crate) fn delivery<T: Send + 'static>() -> (impl FnOnce(T) + Send + 'static, Delivery<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let sender = Arc::clone(&slot);
    let deliver = move |value: T| {
        let mut s = sender.lock().unwrap_or_else(|e| e.into_inner());
        s.value = Some(value);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    };
    (deliver, Delivery { slot })
}

impl<T> Future for Delivery<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// End an error scope, returning its error. Natively this waits for it. A browser cannot
/// wait, so on the web the error, if any, is kept and returned by the next readback
/// ([`take_deferred_error`]) instead; until then this returns `None`.
pub(crate) fn pop_scope(scope: wgpu::ErrorScopeGuard) -> Option<wgpu::Error> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(scope.pop())
    }
    #[cfg(target_arch = "wasm32")]
    {
        let pop = scope.pop();
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(e) = pop.await {
                web::defer(e.to_string());
            }
        });
        None
    }
}

/// The GPU errors kept since the last call (web only: [`pop_scope`] and the uncaptured-error
/// handler of devices wgquant created), as one [`Error::Gpu`].
pub(crate) fn take_deferred_error() -> Option<Error> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
    #[cfg(target_arch = "wasm32")]
    {
        web::take()
    }
}

#[cfg(target_arch = "wasm32")]
pub(crate) mod web {
    use crate::error::Error;
    use std::cell::RefCell;

    thread_local! {
        /// Errors the browser reported after the call that caused them had returned.
        static DEFERRED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn defer(message: String) {
        DEFERRED.with(|d| d.borrow_mut().push(message));
    }

    pub(crate) fn take() -> Option<Error> {
        let messages = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
        (!messages.is_empty()).then(|| {
            Error::Gpu(format!(
                "the browser reported (after the call that caused it): {}",
                messages.join("; ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_completes_with_the_value_its_callback_got() {
        let (deliver, later) = delivery::<u32>();
        let waiting = std::thread::spawn(move || pollster::block_on(later));
        deliver(7);
        assert_eq!(waiting.join().unwrap(), 7);
        // Delivered before anyone waits.
        let (deliver, later) = delivery::<&str>();
        deliver("ready");
        assert_eq!(pollster::block_on(later), "ready");
    }

    #[test]
    fn blocking_runs_a_future_to_its_end() {
        let (deliver, later) = delivery::<u32>();
        let v = std::thread::scope(|s| {
            s.spawn(move || deliver(3));
            block_on("f_async", async { Ok(later.await + 1) })
        });
        assert_eq!(v.unwrap(), 4);
        assert!(take_deferred_error().is_none());
    }
}
