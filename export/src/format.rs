//! The files a recording can be written as, by name: what `seam record --format` chooses from.

use crate::{
    flamegraph_title, off_cpu_view, write_flamegraph, write_folded, write_off_cpu_flamegraph,
    write_pprof, write_speedscope, write_summary_json, ExportError, Summary,
};
use seam_proto::Profile;
use std::fmt;
use std::io;
use std::str::FromStr;

/// One view of a profile written to its own file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// `flamegraph.svg`: [`write_flamegraph`].
    Svg,
    /// `stacks.folded`: [`write_folded`].
    Folded,
    /// `summary.json`: [`write_summary_json`].
    Json,
    /// `profile.pb.gz`: [`write_pprof`].
    Pprof,
    /// `profile.speedscope.json`: [`write_speedscope`].
    Speedscope,
    /// `offcpu.svg`: [`write_off_cpu_flamegraph`].
    OffcpuSvg,
    /// `offcpu.folded`: folded stacks of [`off_cpu_view`], weights in µs off CPU.
    OffcpuFolded,
}

/// The formats written unless others are asked for.
pub const DEFAULT_FORMATS: [Format; 4] =
    [Format::Svg, Format::OffcpuSvg, Format::Folded, Format::Json];

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Svg,
        Format::Folded,
        Format::Json,
        Format::Pprof,
        Format::Speedscope,
        Format::OffcpuSvg,
        Format::OffcpuFolded,
    ];

    /// The name that `--format` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Folded => "folded",
            Format::Json => "json",
            Format::Pprof => "pprof",
            Format::Speedscope => "speedscope",
            Format::OffcpuSvg => "offcpu-svg",
            Format::OffcpuFolded => "offcpu-folded",
        }
    }

    /// The name of the file this format is written to.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Svg => "flamegraph.svg",
            Format::Folded => "stacks.folded",
            Format::Json => "summary.json",
            Format::Pprof => "profile.pb.gz",
            Format::Speedscope => "profile.speedscope.json",
            Format::OffcpuSvg => "offcpu.svg",
            Format::OffcpuFolded => "offcpu.folded",
        }
    }

    /// Writes the profile in this format; `summary` is the profile's summary (only `json`
    /// uses it).
    pub fn write(
        self,
        profile: &Profile,
        summary: &Summary,
        out: &mut impl io::Write,
    ) -> Result<(), ExportError> {
        match self {
            Format::Svg => write_flamegraph(profile, &flamegraph_title(profile), out),
            Format::Folded => write_folded(profile, out),
            Format::Json => write_summary_json(summary, out),
            Format::Pprof => write_pprof(profile, out),
            Format::Speedscope => write_speedscope(profile, out),
            Format::OffcpuSvg => write_off_cpu_flamegraph(
                profile,
                &format!("{} (off CPU)", flamegraph_title(profile)),
                out,
            ),
            Format::OffcpuFolded => write_folded(&off_cpu_view(profile), out),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown format {s:?}; the formats are {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_parse_back_and_files_differ() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        let files: HashSet<_> = Format::ALL.iter().map(|f| f.file_name()).collect();
        assert_eq!(files.len(), Format::ALL.len());
        assert_eq!(
            "png".parse::<Format>(),
            Err(
                "unknown format \"png\"; the formats are svg, folded, json, pprof, speedscope, offcpu-svg, offcpu-folded"
                    .to_string()
            )
        );
        assert!("SVG".parse::<Format>().is_err());
    }
}
