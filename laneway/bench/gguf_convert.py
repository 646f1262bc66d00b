"""An HF directory as a GGUF for llama.cpp, with llama.cpp's own converter, reproducibly.

`python -m laneway.bench.gguf_convert CONVERTER HF_DIR OUT.gguf` runs CONVERTER
(convert_hf_to_gguf.py from llama.cpp, e.g. vendor/llama.cpp in the llama-cpp-python sdist)
in this interpreter (it needs torch and transformers, which Laneway's environment has; the
converter puts its own gguf-py beside it on the path) with `--outtype bf16`, so the GGUF
holds the same bf16 weights the other systems read. Two things in the converter do not fit
an export that has no published tokenizer, and are bridged here, both only where the
converter would otherwise stop:

- The BPE pre-tokenizer is recognised by hashing the token ids of a fixed text, so a
  tokenizer trained here matches no known hash; then `--pre` (default "gpt-2": the export's
  ByteLevel pre-tokenizer splits with GPT-2's regex, which is llama.cpp's "gpt-2" type) is
  written instead of failing.
- The Llama converter imports sentencepiece before it looks for tokenizer.model; without
  that file the import is skipped, so it falls through to the tokenizer.json (BPE) path as
  it does when sentencepiece is installed.
"""

from __future__ import annotations

import argparse
import runpy
import subprocess
import sys
from pathlib import Path

DEFAULT_PRE = "gpt-2"


def command(converter: Path, hf_dir: Path, out: Path, pre: str = DEFAULT_PRE,
            python: str = sys.executable) -> list[str]:
    """The command line that converts `hf_dir` to a bf16 GGUF at `out`."""
    return [python, "-m", "laneway.bench.gguf_convert", str(converter), str(hf_dir), str(out), "--pre", pre]


def convert(converter: Path, hf_dir: Path, out: Path, log: Path, pre: str = DEFAULT_PRE) -> Path:
    """Converts in a child process (the converter's imports stay out of this one); returns `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        done = subprocess.run(command(converter, hf_dir, out, pre), stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"GGUF conversion failed (exit {done.returncode}); see {log}")
    return out


def _bridge(pre: str) -> None:
    import conversion.base as base  # type: ignore[import-not-found]  # the converter's package, importable once its folder is on sys.path

    text_model = base.TextModel
    known_pre = text_model.get_vocab_base_pre
    sentencepiece_vocab = text_model._create_vocab_sentencepiece

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return known_pre(self, tokenizer)
        except NotImplementedError:  # an unpublished tokenizer: no known hash
            print(f"gguf_convert: pre-tokenizer hash unknown; writing tokenizer.ggml.pre={pre!r}", file=sys.stderr)
            return pre

    def create_vocab_sentencepiece(self):
        if not (Path(self.dir_model) / "tokenizer.model").is_file():
            raise FileNotFoundError("no tokenizer.model")  # what the converter catches to try tokenizer.json
        return sentencepiece_vocab(self)

    text_model.get_vocab_base_pre = get_vocab_base_pre
    text_model._create_vocab_sentencepiece = create_vocab_sentencepiece


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m laneway.bench.gguf_convert", description=__doc__.split("\n")[0])
    p.add_argument("converter", type=Path, help="llama.cpp's convert_hf_to_gguf.py")
    p.add_argument("hf_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--pre", default=DEFAULT_PRE, help="tokenizer.ggml.pre when the converter knows no hash")
    a = p.parse_args(argv)
    root = a.converter.resolve().parent
    sys.path[:0] = [str(root), str(root / "gguf-py")]  # the converter's package and its own gguf
    _bridge(a.pre)
    sys.argv = [str(a.converter), str(a.hf_dir), "--outfile", str(a.out), "--outtype", "bf16"]
    runpy.run_path(str(a.converter), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
