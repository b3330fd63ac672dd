//! A stop for requests: once `halt` is called (Ctrl-C, SIGTERM), no request starts and
//! those in flight are given up. Clones share one flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Halt {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    halted: AtomicBool,
    notify: Notify,
}

impl Halt {
    pub fn halt(&self) {
        self.inner.halted.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn is_halted(&self) -> bool {
        self.inner.halted.load(Ordering::SeqCst)
    }

    /// Resolves once `halt` was called.
    pub async fn halted(&self) {
        loop {
            let n = self.inner.notify.notified();
            if self.is_halted() {
                return;
            }
            n.await;
        }
    }

    /// Halt on the first Ctrl-C or SIGTERM (what `timeout`, CI runners and systemd send).
    pub fn on_signals(&self) {
        let h = self.clone();
        tokio::spawn(async move {
            interrupted().await;
            h.halt();
        });
    }
}

/// The first Ctrl-C or SIGTERM.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
