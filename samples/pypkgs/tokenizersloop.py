"""tokenizersloop: a PyO3 class's methods whose trampolines share one name.

Not a sample of ours but the general case seam meets: Hugging Face's
`tokenizers` is built with a PyO3 whose entry trampolines are generic
functions of PyO3's own, one copy per method of a class, all of one name
(`pyo3::impl_::trampoline::fastcall_cfunction_with_keywords::<<..PyTokenizer..
as PyMethods<..>>::py_methods::ITEMS::Def>`): a frame does not say which
method it is, so a profiler must count them all under that name.

Each round encodes a short sentence with a word-level tokenizer
(`Tokenizer.encode`, one call into Rust). `--warmup S` encodes for S seconds
first, then `--start-delay S` waits, and the truth counts the encodes after
that (with `start_ns`, on CLOCK_MONOTONIC), and the warm-up's apart.

Needs the package: pip install tokenizers
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import seam_sample  # noqa: E402


def main():
    args = seam_sample.loop_arg_parser("tokenizersloop", __doc__.splitlines()[0]).parse_args()
    tokenizers = seam_sample.require("tokenizers", "tokenizersloop")
    words = "the quick brown fox jumps over a lazy dog".split()
    vocab = {w: i for i, w in enumerate(["[UNK]"] + words)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    sentence = " ".join(words * 3)
    stop = seam_sample.Stop()
    seam_sample.install_signal_handlers(stop)
    seam_sample.print_ready()

    def encodes():
        for _ in range(100):
            tok.encode(sentence)

    m = seam_sample.warm_then_measure(
        args, stop, lambda seconds: seam_sample.repeat_for(stop, seconds, encodes, 100))
    seam_sample.write_truth(
        args.truth,
        "tokenizersloop",
        m.seconds,
        [seam_sample.crossing("python", "rust", "pyo3", m.count)],
        warmup_encodes=m.warmup,
        start_ns=m.start_ns,
        end_ns=m.end_ns,
    )


if __name__ == "__main__":
    main()
