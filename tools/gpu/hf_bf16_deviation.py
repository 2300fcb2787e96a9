"""How far Hugging Face's own Jamba, run in bf16, is from the committed fp32 references (GPU machine).

The fixtures' references (test/fixtures/*/reference.json) are fp32. A bf16 runtime cannot match them to
fp32 precision, and these tiny random-weight models amplify rounding, so "close enough" must be measured
against the reference implementation itself in the same precision: for every case this teacher-forces the
reference's greedy path through JambaForCausalLM in bf16 on the GPU (and in fp32, as a check of this
script: that one must reproduce the references) and records, per step, the log-probability deviation of
the chosen token and of the reference's top-5 tokens. tools/gpu/check.ts reads the result to set each
case's tolerance.

Usage: python3 tools/gpu/hf_bf16_deviation.py OUT.json [FIXTURES_DIR]
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from transformers import JambaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from expertsint8 import QUANTIZED_WEIGHT, quantize_dequantize  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

FIXTURES = ["jamba-tiny", "jamba-tiny-unusual"]


def experts_int8_checkpoint(model_dir: Path, out: Path) -> Path:
    """A copy of the checkpoint whose ExpertsInt8 weights are quantize-dequantized (fp32), as the references
    were computed. Done on the checkpoint's own tensor names: newer transformers fuse the experts into 3-D
    parameters at load, which the names in expertsint8.py no longer match."""
    for f in model_dir.iterdir():
        if f.suffix == ".safetensors":
            tensors = load_file(str(f))
            save_file({k: quantize_dequantize(v) if QUANTIZED_WEIGHT.match(k) else v for k, v in tensors.items()}, str(out / f.name))
        elif f.is_file():
            shutil.copy(f, out / f.name)
    return out


def load(model_dir: Path, dtype: torch.dtype, experts_int8: bool) -> JambaForCausalLM:
    with tempfile.TemporaryDirectory() as tmp:
        src = experts_int8_checkpoint(model_dir, Path(tmp)) if experts_int8 else model_dir
        model = JambaForCausalLM.from_pretrained(str(src), dtype=torch.float32, use_mamba_kernels=False,
                                                 attn_implementation="eager")
    return model.to(dtype=dtype, device="cuda").eval()


@torch.no_grad()
def deviations(model: JambaForCausalLM, case: dict, run: dict) -> dict:
    prompt = case["prompt_token_ids"]
    path = prompt + run["greedy_token_ids"][:-1]
    logits = model(input_ids=torch.tensor([path], device="cuda"), use_cache=False).logits[0].float()
    lp = torch.log_softmax(logits[len(prompt) - 1:], dim=-1).cpu()
    chosen, top5 = [], []
    for step, token in enumerate(run["greedy_token_ids"]):
        chosen.append(abs(float(lp[step, token]) - run["token_logprobs"][step]))
        top5.append(max(abs(float(lp[step, i]) - v) for i, v in run["top_logprobs"][step]))
    return {"chosen": chosen, "top5": top5, "worst": max(chosen + top5)}


def main() -> None:
    out = Path(sys.argv[1])
    root = Path(sys.argv[2] if len(sys.argv) > 2 else "test/fixtures")
    result: dict = {"transformers": __import__("transformers").__version__, "torch": torch.__version__, "fixtures": {}}
    for fixture in FIXTURES:
        ref = json.loads((root / fixture / "reference.json").read_text())
        per_fixture = {}
        for variant, experts_int8 in (("bf16", False), ("expertsint8", True)):
            for dtype_name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
                model = load(root / fixture, dtype, experts_int8)
                per_fixture[f"{variant}/{dtype_name}"] = {c["name"]: deviations(model, c, c[variant]) for c in ref["cases"]}
                worst = max(v["worst"] for v in per_fixture[f"{variant}/{dtype_name}"].values())
                print(f"{fixture} {variant} run in {dtype_name}: worst |Δlogprob| {worst:.4f}")
        result["fixtures"][fixture] = per_fixture
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
