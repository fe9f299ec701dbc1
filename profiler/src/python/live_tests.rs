//! Reads the stacks of real CPython 3.8 to 3.15 processes (pyenv's
//! builds, and Debian's of 3.14 and 3.15). Needs ptrace access to the children (root here); skips loudly
//! without it, or fails when `SEAM_REQUIRE_PRIVILEGED=1`.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::tests_support::{pyenv_python, python, require_or_skip};
use super::*;
use crate::memory::ProcessMemory;

/// Three threads: main in `outer -> middle -> leaf_spin`, a named worker in
/// `worker_mid -> worker_leaf` calling builtins in a loop, and a "maker"
/// creating objects whose `__init__` is Python (3.13 runs it behind an
/// `_Py_InitCleanup` shim frame). Prints the three native tids, then "ready"
/// from inside `leaf_spin`.
const SCRIPT: &str = r#"import threading
seen = []

def worker_leaf():
    seen.append(threading.get_native_id())
    n = 0
    while True:
        n += len("seam")
        n += abs(-1)

def worker_mid():
    worker_leaf()

class Obj:
    def __init__(self):
        for _ in range(200):
            pass

def make_objects():
    seen.append(threading.get_native_id())
    while True:
        Obj()

def leaf_spin():
    print("ready", flush=True)
    x = 0
    while True:
        x += 1

def middle():
    leaf_spin()

def outer():
    middle()

threading.Thread(target=worker_mid, name="seam-worker", daemon=True).start()
while len(seen) < 1:
    pass
threading.Thread(target=make_objects, name="seam-maker", daemon=True).start()
while len(seen) < 2:
    pass
print(threading.get_native_id(), seen[0], seen[1], flush=True)
outer()
"#;

/// 1-based line of the first line of SCRIPT that starts with `prefix` (after indentation).
fn line_of(prefix: &str) -> u32 {
    SCRIPT
        .lines()
        .position(|l| l.trim_start().starts_with(prefix))
        .expect(prefix) as u32
        + 1
}

/// Lines of `def name` up to the line before the next top-level statement.
fn def_range(name: &str) -> std::ops::RangeInclusive<u32> {
    let start = line_of(&format!("def {name}("));
    let lines: Vec<&str> = SCRIPT.lines().collect();
    let mut end = start;
    while (end as usize) < lines.len() && lines[end as usize].starts_with(' ') {
        end += 1;
    }
    start..=end
}

/// A child Python process, killed when dropped.
struct Script {
    child: std::process::Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Script {
    fn start(python: &Path, script: &str) -> Script {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(script)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Script { child, stdout }
    }

    fn line(&mut self) -> String {
        self.stdout
            .next()
            .expect("child closed stdout")
            .expect("read child stdout")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn maps(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/maps", self.pid())).expect("read maps")
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts the reads a stack walk makes and the time they take.
struct Counting {
    inner: ProcessMemory,
    reads: Cell<u64>,
    nanos: Cell<u64>,
}

impl ReadMemory for Counting {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.reads.set(self.reads.get() + 1);
        let t = Instant::now();
        let r = self.inner.read(addr, buf);
        self.nanos
            .set(self.nanos.get() + t.elapsed().as_nanos() as u64);
        r
    }
}

fn names(frames: &[PyFrame]) -> Vec<&str> {
    frames.iter().map(|f| f.function.as_str()).collect()
}

/// A function's name as `version` names it: 3.10 has no qualified names
/// (`Thread.run` is `run`).
fn named(version: (u8, u8), qualname: &str) -> &str {
    if version < (3, 11) {
        qualname.rsplit('.').next().unwrap_or(qualname)
    } else {
        qualname
    }
}

/// Reads a stack, or `None` after a loud skip when we lack ptrace access.
fn read(py: &mut PythonProcess, mem: &ProcessMemory, tid: u32) -> Option<Vec<PyFrame>> {
    match py.stack(mem, tid) {
        Ok(Some(frames)) => Some(frames),
        Ok(None) => panic!("thread {tid} has no Python thread state"),
        Err(Error::PermissionDenied { what }) => {
            require_or_skip(&format!("python live test: no ptrace access ({what})"));
            None
        }
        Err(e) => panic!("thread {tid}: {e}"),
    }
}

fn check_main(version: (u8, u8), frames: &[PyFrame]) {
    assert_eq!(
        names(frames),
        ["leaf_spin", "middle", "outer", "<module>"],
        "{version:?}: {frames:#?}"
    );
    assert!(frames.iter().all(|f| f.file == "<string>"), "{frames:#?}");
    let leaf = frames[0].line.expect("leaf line");
    assert!(
        def_range("leaf_spin").contains(&leaf),
        "{version:?}: leaf_spin at line {leaf}"
    );
    assert_eq!(
        frames[1].line,
        Some(line_of("leaf_spin()")),
        "{version:?}: middle"
    );
    assert_eq!(
        frames[2].line,
        Some(line_of("middle()")),
        "{version:?}: outer"
    );
    assert_eq!(
        frames[3].line,
        Some(line_of("outer()")),
        "{version:?}: <module>"
    );
    // outer, middle and leaf_spin are inlined Python calls: one eval run
    // (3.10: an eval run each).
    let ends: Vec<bool> = frames.iter().map(|f| f.ends_eval_run).collect();
    let want = if version < (3, 11) {
        [true; 4]
    } else {
        [false, false, false, true]
    };
    assert_eq!(ends, want, "{version:?}");
}

fn check_worker(version: (u8, u8), frames: &[PyFrame]) {
    assert_eq!(
        names(frames),
        [
            "worker_leaf",
            "worker_mid",
            named(version, "Thread.run"),
            named(version, "Thread._bootstrap_inner"),
            named(version, "Thread._bootstrap")
        ],
        "{version:?}: {frames:#?}"
    );
    assert_eq!(frames[0].file, "<string>");
    assert_eq!(frames[1].file, "<string>");
    for f in &frames[2..] {
        assert!(
            f.file
                .ends_with(&format!("python{}.{}/threading.py", version.0, version.1)),
            "{f:?}"
        );
        assert!(f.line.is_some_and(|l| l > 0), "{f:?}");
    }
    let leaf = frames[0].line.expect("leaf line");
    assert!(
        def_range("worker_leaf").contains(&leaf),
        "{version:?}: worker_leaf at line {leaf}"
    );
    assert_eq!(frames[1].line, Some(line_of("worker_leaf()")));
    // The thread's own C call starts the outermost run. `run` calls the
    // target with CALL_FUNCTION_EX, which re-enters the eval loop in 3.11
    // and again from 3.14 (gdb shows two eval loops on the thread's C stack
    // with Debian's 3.14.10); 3.12 and 3.13 push the Python frame inline.
    let ends: Vec<bool> = frames.iter().map(|f| f.ends_eval_run).collect();
    let want = if version >= (3, 14) {
        [false, false, true, false, true]
    } else if version >= (3, 12) {
        [false, false, false, false, true]
    } else if version < (3, 11) {
        [true; 5]
    } else {
        [false, true, false, false, true]
    };
    assert_eq!(ends, want, "{version:?}: {frames:#?}");
}

/// Samples the maker until it is caught inside `Obj.__init__` (and at
/// least 500 times), checking every stack. Its frames come and go all the
/// time, so some reads are torn: those must be errors, and rare.
fn check_maker(version: (u8, u8), py: &mut PythonProcess, mem: &ProcessMemory, tid: u32) {
    let bootstrap = [
        named(version, "Thread.run"),
        named(version, "Thread._bootstrap_inner"),
        named(version, "Thread._bootstrap"),
    ];
    let init = named(version, "Obj.__init__");
    let (mut in_init, mut init_runs, mut samples, mut torn) = (0, 0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (in_init == 0 || samples < 500) && Instant::now() < deadline {
        let frames = match py.stack(mem, tid) {
            Ok(frames) => frames.expect("maker thread"),
            Err(Error::Io { .. }) => {
                torn += 1;
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        samples += 1;
        let names = names(&frames);
        match names[0] {
            "make_objects" => assert_eq!(names[1..], bootstrap, "{version:?}: {frames:#?}"),
            name if name == init => {
                in_init += 1;
                let want = ["make_objects", bootstrap[0], bootstrap[1], bootstrap[2]];
                assert_eq!(names[1..], want, "{version:?}: {frames:#?}");
                assert_eq!(frames[0].file, "<string>");
                let line = frames[0].line.unwrap();
                assert!(def_range("__init__").contains(&line), "{frames:#?}");
                // Called through type.__call__ in C before 3.13: its own eval
                // run. A read that races a new `__init__` frame being set up
                // at the same address can miss the mark, so only most must.
                if version < (3, 13) && frames[0].ends_eval_run {
                    init_runs += 1;
                }
            }
            _ => panic!("{version:?}: unexpected maker stack {frames:#?}"),
        }
    }
    assert!(
        in_init > 0,
        "{version:?}: never caught the maker inside Obj.__init__ in {samples} samples"
    );
    assert!(
        torn <= samples,
        "{version:?}: {torn} torn reads for {samples} good ones"
    );
    if version < (3, 13) {
        assert!(
            init_runs * 2 > in_init,
            "{version:?}: __init__ ended its eval run in {init_runs} of {in_init}"
        );
    }
    eprintln!(
        "python {}.{}: maker thread: {samples} stacks, {in_init} inside __init__, {torn} torn",
        version.0, version.1
    );
}

#[test]
fn reads_live_stacks() {
    for minor in ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"] {
        let Some(python) = python(minor) else {
            require_or_skip(&format!(
                "python live test: CPython {minor} is not installed"
            ));
            continue;
        };
        // pyenv's builds are shared; Debian's (3.14, 3.15 in CI) link libpython in.
        let holder = match pyenv_python(minor) {
            Some(_) => format!("libpython{minor}.so"),
            None => format!("bin/python{minor}"),
        };
        if !check_interpreter(&python, minor, &holder) {
            return;
        }
    }
}

/// The distribution's Python, when it is one seam reads: Debian 12's is a
/// stripped, non-PIE executable with libpython linked in.
#[test]
fn reads_system_python() {
    let python = Path::new("/usr/bin/python3");
    let Ok(out) = Command::new(python)
        .arg("-c")
        .arg("import sys; print('%d.%d' % sys.version_info[:2])")
        .output()
    else {
        eprintln!("SKIPPED: no /usr/bin/python3");
        return;
    };
    let minor = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let read = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"];
    if !read.contains(&minor.as_str()) {
        eprintln!("SKIPPED: /usr/bin/python3 is {minor}, not one seam reads");
        return;
    }
    let linked_in = std::fs::canonicalize(python).unwrap();
    let lib = linked_in.to_string_lossy().into_owned();
    check_interpreter(python, &minor, &lib);
}

/// Runs SCRIPT under `python` and checks every thread's stack; `false` when
/// skipped for lack of ptrace access.
fn check_interpreter(python: &Path, minor: &str, library: &str) -> bool {
    let mut script = Script::start(python, SCRIPT);
    let ids: Vec<u32> = script
        .line()
        .split(' ')
        .map(|t| t.parse().unwrap())
        .collect();
    let [main_tid, worker_tid, maker_tid] = ids[..] else {
        panic!("three tids")
    };
    assert_eq!(script.line(), "ready");
    assert_eq!(main_tid, script.pid());

    let mut py = PythonProcess::find(script.pid(), &script.maps())
        .unwrap()
        .expect("python found");
    let version = py.version();
    assert_eq!(format!("{}.{}", version.0, version.1), minor);
    let found_in = py.library().to_string_lossy();
    assert!(found_in.contains(library), "{found_in} is not {library}");
    let mem = ProcessMemory { pid: script.pid() };

    let Some(first) = read(&mut py, &mem, main_tid) else {
        return false;
    };
    check_main(version, &first);
    for _ in 0..50 {
        check_main(version, &read(&mut py, &mem, main_tid).unwrap());
        check_worker(version, &read(&mut py, &mem, worker_tid).unwrap());
    }

    check_maker(version, &mut py, &mem, maker_tid);

    // A tid with no Python thread state: ours.
    assert_eq!(py.stack(&mem, std::process::id()).unwrap(), None);
    let t = Instant::now();
    assert_eq!(py.stack(&mem, std::process::id()).unwrap(), None);
    assert!(
        t.elapsed() < RESCAN_INTERVAL,
        "a repeated miss must not rescan"
    );

    // Cost on a warm cache: the worker's 5-frame stack. Batches, so
    // that preemption on a busy machine shows as spread, not as the cost.
    let counting = Counting {
        inner: mem,
        reads: Cell::new(0),
        nanos: Cell::new(0),
    };
    let (batches, per_batch) = (20, 200u32);
    let mut per_call: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                std::hint::black_box(py.stack(&counting, worker_tid).unwrap());
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(per_batch)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    let calls = f64::from(per_batch) * batches as f64;
    eprintln!(
            "python {minor}: stack() of a 5-frame stack, warm: {:.1} reads/call; best batch {:.1} µs/call, median {:.1} µs/call, of which reads {:.1} µs",
            counting.reads.get() as f64 / calls,
            per_call[0],
            per_call[batches / 2],
            counting.nanos.get() as f64 / 1e3 / calls,
        );
    true
}

#[test]
fn unsupported_version_is_explained() {
    let Some(python) = pyenv_python("3.7") else {
        eprintln!("SKIPPED: pyenv CPython 3.7 is not installed; nothing to check");
        return;
    };
    let mut script = Script::start(
        &python,
        "import time\nprint('ready', flush=True)\ntime.sleep(600)\n",
    );
    assert_eq!(script.line(), "ready");
    let err = PythonProcess::find(script.pid(), &script.maps())
        .err()
        .expect("3.7 must be refused");
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "CPython 3.7 is not supported: seam reads 3.8 to 3.15; native frames only"
    );
}

#[test]
fn no_python_in_this_process() {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(PythonProcess::find(std::process::id(), &maps)
        .unwrap()
        .is_none());
}
