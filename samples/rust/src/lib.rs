//! `libseam_mix.so`: the Rust part of the seam samples.
//!
//! One C-ABI export, `seam_mix_work`, which does real arithmetic in two
//! non-inlined functions of the `mix` module (`mix::round` and `mix::fold`,
//! driven by `mix::run`), so a profiler sees at least three Rust frames:
//! `seam_mix_work -> seam_mix::mix::run -> seam_mix::mix::round`.
//!
//! A second export, `seam_noop`, returns its argument: the empty Rust
//! function that the ffibench sample calls through ctypes (`ctypes-rust`).

pub mod mix {
    /// Width of the mixing state.
    pub const LANES: usize = 16;

    /// The mixing state: a small array of lanes that every round stirs.
    pub struct State {
        pub lanes: [u64; LANES],
    }

    impl State {
        pub fn new(seed: u64) -> State {
            let mut lanes = [0u64; LANES];
            let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
            for lane in lanes.iter_mut() {
                x = x
                    .wrapping_mul(0x5851_f42d_4c95_7f2d)
                    .wrapping_add(1442695040888963407);
                *lane = x;
            }
            State { lanes }
        }
    }

    /// One round: every lane is multiplied, rotated and folded with its
    /// neighbour. The dependency chain between lanes keeps the compiler from
    /// vectorising the round away.
    #[inline(never)]
    pub fn round(state: &mut State, k: u64) {
        let mut carry = k;
        for i in 0..LANES {
            let v = state.lanes[i] ^ carry;
            let v = v.wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(29);
            carry = v ^ (v >> 31);
            state.lanes[i] = carry;
        }
        state.lanes[0] ^= carry;
    }

    /// Folds the state into one digest word.
    #[inline(never)]
    pub fn fold(state: &State) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for &lane in state.lanes.iter() {
            h = (h ^ lane).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// Runs `rounds` rounds, then folds.
    #[inline(never)]
    pub fn run(seed: u64, rounds: u32) -> u64 {
        let mut state = State::new(seed);
        for r in 0..rounds {
            round(std::hint::black_box(&mut state), r as u64);
        }
        let digest = fold(&state);
        // Work after the call keeps `fold` from being a tail call.
        std::hint::black_box(digest).rotate_left(7) ^ seed
    }
}

/// C ABI entry point (see include/seam_mix.h).
#[no_mangle]
pub extern "C" fn seam_mix_work(seed: u64, rounds: u32) -> u64 {
    let digest = mix::run(std::hint::black_box(seed), rounds);
    // Again: no tail call, so `seam_mix_work` stays on the stack.
    std::hint::black_box(digest).wrapping_add(rounds as u64)
}

/// C ABI entry point of ffibench's `ctypes-rust` mechanism: returns `x`.
/// Being `#[no_mangle]` and exported, it stays a real function although
/// nothing in this crate calls it (it compiles to `mov %rdi,%rax; ret`).
#[no_mangle]
pub extern "C" fn seam_noop(x: i64) -> i64 {
    x
}
