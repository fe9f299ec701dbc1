//! Kernel symbols from /proc/kallsyms.

/// Sorted kernel text symbols. Empty when kallsyms hides addresses
/// (kernel.kptr_restrict) — kernel frames are then named `[kernel]`.
#[derive(Default)]
pub struct KernelSymbols {
    symbols: Vec<(u64, String)>,
}

impl KernelSymbols {
    /// The running kernel's symbols, read once per process (about 0.2 s)
    /// and shared: `seam record` reads them while it calibrates.
    pub fn shared() -> std::sync::Arc<KernelSymbols> {
        static SHARED: std::sync::OnceLock<std::sync::Arc<KernelSymbols>> =
            std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| std::sync::Arc::new(KernelSymbols::load()))
            .clone()
    }

    pub fn load() -> KernelSymbols {
        std::fs::read_to_string("/proc/kallsyms")
            .map(|t| KernelSymbols::parse(&t))
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> KernelSymbols {
        let mut symbols: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_ascii_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let ty = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(ty, "t" | "T" | "w" | "W")).then(|| (addr, name.to_string()))
            })
            .collect();
        symbols.sort();
        KernelSymbols { symbols }
    }

    pub fn name(&self, addr: u64) -> &str {
        let i = self.symbols.partition_point(|(a, _)| *a <= addr);
        match i.checked_sub(1) {
            Some(i) => &self.symbols[i].1,
            None => "[kernel]",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup() {
        let k = KernelSymbols::parse("ffffffff81000000 T _stext\nffffffff81000100 t do_syscall_64\nffffffff81000200 D some_data\n");
        assert_eq!(k.name(0xffffffff81000150), "do_syscall_64");
        assert_eq!(k.name(0xffffffff81000000), "_stext");
        assert_eq!(k.name(0x10), "[kernel]");
        assert_eq!(
            KernelSymbols::parse("0000000000000000 T hidden\n").name(5),
            "[kernel]"
        );
    }
}
