//! Completing asyncio futures from tokio, many per event-loop wake-up.
//!
//! pyo3-async-runtimes' `future_into_py` wakes the event loop once per completed call
//! (`call_soon_threadsafe`), and at a few thousand calls a second those wake-ups, not the
//! network, bound an asyncio client (measured: the bare native awaitable topped out at half
//! the Rust SDK's throughput). Here each event loop gets one [`Bridge`]: completed calls queue
//! their results, and only the first completion after a drain schedules a drain, which then
//! completes every queued future in one loop iteration.
//!
//! Cancelling the asyncio future aborts the tokio task, which drops the SDK future.
//!
//! At interpreter exit ([`at_exit`], registered with `atexit` by the package) tokio threads
//! stop calling into Python: a thread caught waiting for the GIL once finalization has begun
//! is ended by CPython with `pthread_exit`, whose unwinding through Rust frames aborts the
//! process (seen as a flaky SIGABRT at exit with an asyncio client open).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;

/// Set when the interpreter begins to exit: no completion calls into Python any more.
static EXITING: AtomicBool = AtomicBool::new(false);

/// How long [`at_exit`] lets completions already inside Python finish (they hold or wait for
/// the GIL for microseconds).
const EXIT_GRACE: Duration = Duration::from_millis(50);

/// Called by `atexit`: stops completions from calling into Python, then releases the GIL for
/// a moment so that those already under way finish before finalization begins.
pub(crate) fn at_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::Release);
    py.detach(|| std::thread::sleep(EXIT_GRACE));
}

/// Turns a Rust result into a Python object, under the GIL.
type Complete = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// One event loop's queue of completed calls. See the module docs.
pub(crate) struct Bridge {
    event_loop: Py<PyAny>,
    /// Completed calls not yet handed to their futures. Short critical sections only.
    queue: Mutex<Vec<(Py<PyAny>, Complete)>>,
    /// A drain is scheduled on the loop and has not started yet.
    scheduled: AtomicBool,
}

impl Bridge {
    pub(crate) fn new(event_loop: Py<PyAny>) -> Arc<Bridge> {
        Arc::new(Bridge {
            event_loop,
            queue: Mutex::new(Vec::new()),
            scheduled: AtomicBool::new(false),
        })
    }

    pub(crate) fn is_for(&self, event_loop: &Bound<'_, PyAny>) -> bool {
        self.event_loop.bind(event_loop.py()).is(event_loop)
    }

    /// Runs `op` on the shared runtime and returns an asyncio future of its result.
    pub(crate) fn spawn<T, F>(self: &Arc<Self>, py: Python<'_>, op: F) -> PyResult<Py<PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        let future = self
            .event_loop
            .bind(py)
            .call_method0("create_future")?
            .unbind();
        let bridge = self.clone();
        let target = future.clone_ref(py);
        let task = pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
            let result = op.await;
            let complete: Complete = Box::new(move |py| match result {
                Ok(value) => value.into_py_any(py),
                Err(e) => Err(e),
            });
            bridge.finish(target, complete);
        });
        let canceller = Canceller {
            abort: task.abort_handle(),
        };
        future
            .bind(py)
            .call_method1("add_done_callback", (canceller,))?;
        Ok(future)
    }

    /// Queues a completed call; schedules a drain unless one is already pending.
    fn finish(self: &Arc<Self>, future: Py<PyAny>, complete: Complete) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((future, complete));
        if EXITING.load(Ordering::Acquire) {
            return; // Nobody is left to await it, and Python may be finalizing.
        }
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            Python::attach(|py| {
                let drain = Drain {
                    bridge: self.clone(),
                };
                // If the loop is closed there is nobody left to tell.
                let _ = self
                    .event_loop
                    .bind(py)
                    .call_method1("call_soon_threadsafe", (drain,));
            });
        }
    }
}

/// The loop callback that completes every queued future.
#[pyclass(module = "ringkv._native", frozen)]
struct Drain {
    bridge: Arc<Bridge>,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        // Cleared before taking the queue: a completion queued after this schedules a new
        // drain, so nothing waits for a wake-up that already happened.
        self.bridge.scheduled.store(false, Ordering::Release);
        let ready =
            std::mem::take(&mut *self.bridge.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for (future, complete) in ready {
            let future = future.bind(py);
            if future.call_method0("cancelled")?.is_truthy()? {
                continue;
            }
            match complete(py) {
                Ok(value) => future.call_method1("set_result", (value,))?,
                Err(e) => future.call_method1("set_exception", (e.value(py),))?,
            };
        }
        Ok(())
    }
}

/// Done-callback of a call's future: a cancelled future aborts its tokio task.
#[pyclass(module = "ringkv._native", frozen)]
struct Canceller {
    abort: tokio::task::AbortHandle,
}

#[pymethods]
impl Canceller {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.abort.abort();
        }
        Ok(())
    }
}
