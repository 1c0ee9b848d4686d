//! Free space on the spool's file system, for refusing new mail before
//! the disk is full (`[server] min_free_space`). Measured with `statvfs` at
//! most once a second, so a busy listener does not make a syscall per MAIL.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_AGE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct FreeSpace {
    /// The last measurement that had room, and when it was taken.
    roomy: Mutex<Option<(Instant, u64)>>,
}

impl FreeSpace {
    /// The bytes available under `path` if fewer than `needed`, else
    /// `None` (also when it cannot be measured). Only a measurement with
    /// room is reused (for a second); a short one is taken again at the
    /// next call, so service resumes as soon as space returns.
    pub(super) fn short_of(&self, path: &Path, needed: u64) -> Option<u64> {
        let mut roomy = super::lock(&self.roomy);
        if let Some((at, free)) = *roomy
            && at.elapsed() < MAX_AGE
            && free >= needed
        {
            return None;
        }
        let free = available(path)?;
        if free >= needed {
            *roomy = Some((Instant::now(), free));
            return None;
        }
        *roomy = None;
        Some(free)
    }
}

/// Bytes an unprivileged writer may still use under `path`.
pub(super) fn available(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` is a writable statvfs
    // the call fills in; it is read only after the call succeeded.
    let st = unsafe {
        if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    // Both are u64 on 64-bit Linux, narrower on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    Some(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_measurement_with_room_is_reused() {
        let dir = std::env::temp_dir();
        let free = available(&dir).expect("statvfs of the temp dir");
        assert!(free > 0);
        let f = FreeSpace::default();
        // More than there is: short, and measured anew each time.
        assert!(f.short_of(&dir, u64::MAX).is_some());
        assert!(f.roomy.lock().unwrap().is_none());
        // Room: remembered, so within the second even a path that cannot
        // be measured passes.
        assert_eq!(f.short_of(&dir, 1), None);
        assert_eq!(f.short_of(Path::new("/nonexistent/postern"), 1), None);
        // A need above the remembered figure measures again.
        assert!(f.short_of(&dir, u64::MAX).is_some());
        assert_eq!(available(Path::new("/nonexistent/postern")), None);
        assert_eq!(f.short_of(Path::new("/nonexistent/postern"), 1), None);
    }
}
