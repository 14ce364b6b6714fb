//! CPU time of this process over the timed window (what the in-process functions cost).

use super::*;

/// CPU time (user + system) so far of this process (clients, function URL servers, pollers
/// and the functions themselves) and of the moto server it spawned.
pub(crate) struct CpuSample {
    pub(crate) bench: Option<Duration>,
    pub(crate) moto: Option<Duration>,
}

impl CpuSample {
    pub(crate) fn now() -> Self {
        let me = std::process::id();
        let moto = std::fs::read_dir("/proc").ok().and_then(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    let rest = stat.rsplit_once(") ")?.1;
                    let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
                    if ppid != me {
                        return None;
                    }
                    // moto runs as the venv's python with a launcher script, so look at the
                    // command line, not the process name.
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                    String::from_utf8_lossy(&cmdline)
                        .contains("moto_server")
                        .then(|| cpu_time(&stat))?
                })
                .next()
        });
        let bench = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| cpu_time(&stat));
        Self { bench, moto }
    }
}

/// CPU used over one or more timed windows.
pub(crate) struct CpuWindow {
    pub(crate) bench: Option<Duration>,
    pub(crate) moto: Option<Duration>,
    pub(crate) wall: Duration,
}

impl Default for CpuWindow {
    fn default() -> Self {
        Self {
            bench: Some(Duration::ZERO),
            moto: Some(Duration::ZERO),
            wall: Duration::ZERO,
        }
    }
}

impl CpuWindow {
    pub(crate) fn since(start: &CpuSample, wall: Duration) -> Self {
        let mut window = Self::default();
        window.add(start, wall);
        window
    }

    /// Adds the CPU used from `start` until now, over `wall` of timed time.
    pub(crate) fn add(&mut self, start: &CpuSample, wall: Duration) {
        let now = CpuSample::now();
        let delta = |total: Option<Duration>, from: Option<Duration>, to: Option<Duration>| {
            Some(total? + to?.saturating_sub(from?))
        };
        self.bench = delta(self.bench, start.bench, now.bench);
        self.moto = delta(self.moto, start.moto, now.moto);
        self.wall += wall;
    }

    /// `bench process 12.3 s (0.61 cores), moto 20.1 s (0.99 cores) ...`.
    pub(crate) fn render(&self) -> String {
        let part = |name: &str, used: Option<Duration>| match used {
            Some(used) => format!(
                "{name} {:.1} s ({:.2} cores)",
                used.as_secs_f64(),
                used.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
            ),
            None => format!("{name} n/a"),
        };
        format!(
            "{}, {} (user+sys over the timed window)",
            part("bench process", self.bench),
            part("moto", self.moto)
        )
    }
}

/// utime + stime from a `/proc/PID/stat` line (USER_HZ is 100 on Linux).
pub(crate) fn cpu_time(stat: &str) -> Option<Duration> {
    let rest = stat.rsplit_once(") ")?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}
