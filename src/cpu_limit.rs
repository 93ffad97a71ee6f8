//! Making this process see an AVX2 desktop's CPU on a machine with AVX-512, so the code paths
//! that most inspectors' desktops take can be profiled and benchmarked where only a newer CPU is
//! at hand (`--cpu avx2`, or `LENS_INSPECT_CPU=avx2`; docs/speed.md).
//!
//! Every library under the model (gemm, macerator, pulp, our own kernels) picks its SIMD path
//! at run time from the `cpuid` instruction. Linux can make `cpuid` fault for one process
//! (`arch_prctl(ARCH_SET_CPUID, 0)`, on CPUs with "CPUID faulting", as rr uses it); a SIGSEGV
//! handler then answers every `cpuid` from a table read before faulting was switched on, with
//! the AVX-512 (and AMX) bits cleared. What remains is an AVX2 + FMA machine, as Haswell through
//! Zen 3 and Intel's client CPUs without AVX-512 are. The setting is inherited by every thread
//! the process starts later, and dropped by `exec`. glibc's own string functions chose their path
//! before `main`; `GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F` limits those too.

use std::fmt;

/// Which instruction sets the process may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuLevel {
    /// Whatever the CPU has.
    Native,
    /// AVX2 and FMA at most: no AVX-512, no AMX (most desktops and laptops).
    Avx2,
}

/// Why the CPU could not be limited.
#[derive(Debug)]
pub struct CpuLimitError(String);

impl fmt::Display for CpuLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CpuLimitError {}

/// The level asked for by `LENS_INSPECT_CPU` (`native` or `avx2`), if set.
pub fn level_from_env() -> Result<Option<CpuLevel>, CpuLimitError> {
    match std::env::var("LENS_INSPECT_CPU") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "native" => Ok(Some(CpuLevel::Native)),
            "avx2" => Ok(Some(CpuLevel::Avx2)),
            other => Err(CpuLimitError(format!("LENS_INSPECT_CPU={other}: expected `native` or `avx2`"))),
        },
    }
}

/// Limits this process (and every thread it starts from now on) to `level`. Must run before
/// anything asks the CPU for its features (they are cached on first use) and before any other
/// thread exists: `main` calls it first.
pub fn apply(level: CpuLevel) -> Result<(), CpuLimitError> {
    match level {
        CpuLevel::Native => Ok(()),
        CpuLevel::Avx2 => imp::limit_to_avx2(),
    }
}

/// Whether [`apply`] limited this process (to AVX2): what a child process, which `exec` frees
/// from the limit, must be told to match.
pub fn is_limited() -> bool {
    imp::is_limited()
}

/// The SIMD features this process sees, as a short list for benchmark reports ("avx512f avx2
/// fma"), so a figure always says which path produced it.
pub fn features_seen() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut seen = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") {
            seen.push("avx512f");
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            seen.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            seen.push("fma");
        }
        if seen.is_empty() {
            seen.push("sse2");
        }
        seen.join(" ")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_string()
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
mod imp {
    use super::CpuLimitError;

    pub fn limit_to_avx2() -> Result<(), CpuLimitError> {
        Err(CpuLimitError("--cpu avx2 needs Linux on x86-64 (it makes `cpuid` fault and answers it)".into()))
    }

    pub fn is_limited() -> bool {
        false
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::CpuLimitError;
    use std::arch::x86_64::__cpuid_count;
    use std::sync::OnceLock;

    /// One answer of `cpuid`: leaf, subleaf, then eax, ebx, ecx, edx.
    type Answer = (u32, u32, [u32; 4]);

    /// The masked answers, read once before faulting was switched on (the handler must not run
    /// `cpuid` itself: it would fault again).
    static ANSWERS: OnceLock<Vec<Answer>> = OnceLock::new();
    /// The SIGSEGV action that was installed before ours (Rust's stack-overflow reporter), for
    /// every fault that is not a `cpuid`.
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
    /// Set once `cpuid` faults and is answered from [`ANSWERS`].
    static LIMITED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    const ARCH_SET_CPUID: libc::c_int = 0x1012;
    /// Subleaves read per leaf: the leaves that use ecx (4, 7, 0xb, 0xd, 0x1f, ...) have fewer.
    const SUBLEAVES: u32 = 32;

    fn bit(n: u32) -> u32 {
        1 << n
    }

    /// Clears what an AVX2 desktop lacks from one answer.
    fn mask(leaf: u32, sub: u32, r: &mut [u32; 4]) {
        match (leaf, sub) {
            (7, 0) => {
                // ebx: AVX-512 F, DQ, IFMA, PF, ER, CD, BW, VL.
                r[1] &= !(bit(16) | bit(17) | bit(21) | bit(26) | bit(27) | bit(28) | bit(30) | bit(31));
                // ecx: AVX-512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ.
                r[2] &= !(bit(1) | bit(6) | bit(11) | bit(12) | bit(14));
                // edx: AVX-512 4VNNIW, 4FMAPS, VP2INTERSECT, FP16; AMX BF16, TILE, INT8.
                r[3] &= !(bit(2) | bit(3) | bit(8) | bit(22) | bit(23) | bit(24) | bit(25));
            }
            (7, 1) => {
                // eax: AVX-512 BF16, AMX FP16; edx: AVX10.
                r[0] &= !(bit(5) | bit(21));
                r[3] &= !bit(19);
            }
            // AVX10 and AMX description leaves.
            (0x1d, _) | (0x1e, _) | (0x24, _) => *r = [0; 4],
            // Supported state components: no opmask / ZMM / tile state.
            (0xd, 0) => r[0] &= !(bit(5) | bit(6) | bit(7) | bit(17) | bit(18)),
            _ => {}
        }
    }

    fn read_answers() -> Vec<Answer> {
        let mut answers = Vec::new();
        for base in [0u32, 0x4000_0000, 0x8000_0000] {
            // cpuid is safe on every x86-64 CPU (it only reads).
            let max = __cpuid_count(base, 0).eax;
            let max = if max < base || max - base > 0x100 { base } else { max };
            for leaf in base..=max {
                for sub in 0..SUBLEAVES {
                    let r = __cpuid_count(leaf, sub);
                    let mut regs = [r.eax, r.ebx, r.ecx, r.edx];
                    mask(leaf, sub, &mut regs);
                    answers.push((leaf, sub, regs));
                }
            }
        }
        answers
    }

    fn lookup(leaf: u32, sub: u32) -> [u32; 4] {
        let Some(answers) = ANSWERS.get() else { return [0; 4] };
        let sub = sub.min(SUBLEAVES - 1);
        answers.iter().find(|a| a.0 == leaf && a.1 == sub).map(|a| a.2).unwrap_or([0; 4])
    }

    extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers; the faulting
        // instruction's first two bytes are mapped (it was just fetched).
        unsafe {
            let uc = &mut *(ctx as *mut libc::ucontext_t);
            let gregs = &mut uc.uc_mcontext.gregs;
            let rip = gregs[libc::REG_RIP as usize] as *const u8;
            if !rip.is_null() && *rip == 0x0f && *rip.add(1) == 0xa2 {
                let r = lookup(gregs[libc::REG_RAX as usize] as u32, gregs[libc::REG_RCX as usize] as u32);
                gregs[libc::REG_RAX as usize] = r[0] as i64;
                gregs[libc::REG_RBX as usize] = r[1] as i64;
                gregs[libc::REG_RCX as usize] = r[2] as i64;
                gregs[libc::REG_RDX as usize] = r[3] as i64;
                gregs[libc::REG_RIP as usize] += 2;
                return;
            }
            // A real fault: hand it to whoever handled SIGSEGV before, or die of it.
            match PREVIOUS.get() {
                Some(prev) if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN => {
                    if prev.sa_flags & libc::SA_SIGINFO != 0 {
                        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                            std::mem::transmute(prev.sa_sigaction);
                        f(sig, info, ctx);
                    } else {
                        let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                        f(sig);
                    }
                }
                _ => {
                    libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                }
            }
        }
    }

    pub fn is_limited() -> bool {
        LIMITED.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn limit_to_avx2() -> Result<(), CpuLimitError> {
        if is_limited() {
            return Ok(());
        }
        let _ = ANSWERS.set(read_answers());
        // SAFETY: installing a signal handler and switching on CPUID faulting for this thread;
        // called before any other thread exists, so every later thread inherits both.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGSEGV, &action, &mut previous) != 0 {
                return Err(CpuLimitError(format!(
                    "--cpu avx2: could not install the cpuid handler: {}",
                    std::io::Error::last_os_error()
                )));
            }
            let _ = PREVIOUS.set(previous);
            if libc::syscall(libc::SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0 {
                let why = std::io::Error::last_os_error();
                libc::sigaction(libc::SIGSEGV, &previous, std::ptr::null_mut());
                return Err(CpuLimitError(format!(
                    "--cpu avx2 needs a CPU and kernel with CPUID faulting (`cpuid_fault` in /proc/cpuinfo), \
                     which this machine does not offer ({why}); profile on an AVX2 machine instead"
                )));
            }
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Err(CpuLimitError(
                "--cpu avx2 came too late: the CPU's features were already read in this process".into(),
            ));
        }
        LIMITED.store(true, std::sync::atomic::Ordering::Relaxed);
        log::info!("CPU limited to AVX2 + FMA (cpuid answered from a masked table)");
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_mask_clears_avx512_and_keeps_avx2_and_fma() {
            let mut leaf7 = [0, u32::MAX, u32::MAX, u32::MAX];
            mask(7, 0, &mut leaf7);
            assert_eq!(leaf7[1] & bit(16), 0, "avx512f");
            assert_eq!(leaf7[1] & bit(31), 0, "avx512vl");
            assert_eq!(leaf7[1] & bit(30), 0, "avx512bw");
            assert_ne!(leaf7[1] & bit(5), 0, "avx2 must stay");
            assert_ne!(leaf7[1] & bit(3), 0, "bmi1 must stay");
            let mut leaf1 = [0, 0, u32::MAX, u32::MAX];
            mask(1, 0, &mut leaf1);
            assert_ne!(leaf1[2] & bit(12), 0, "fma must stay");
            assert_ne!(leaf1[2] & bit(28), 0, "avx must stay");
        }
    }
}
