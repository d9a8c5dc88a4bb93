"""Train the pocket flow model: ``python -m p2p_widgets.pocket.train_flow --out DIR``.

Rectified flow as SD3 and Flux train: ``x_t = (1 - t) x_0 + t noise``, the transformer predicts
the velocity ``noise - x_0``, plain MSE. Timesteps are drawn logit-normal (SD3's choice: the mid
noise levels, where the layout and colours are decided, get most of the samples; uniform spends
them on nearly clean and nearly pure-noise inputs that teach little). 10 % caption dropout (the
empty caption) for classifier-free guidance, AdamW with warmup and cosine decay, gradient
clipping, EMA weights.

Only the T5 encoder and the transformer train; the VAE and the CLIP text encoder are the pocket
UNet's, frozen (the VAE latents and CLIP's pooled vectors are computed once for the scene pool).
Seeded; ``--seconds`` fixes the step count from the measured speed after a warm-up (logged, so
``--steps N`` repeats it); ``--resume`` continues from ``DIR/resume``; ``--threads`` sets torch's
CPU threads (one, so tests can run beside it); on CUDA (``--device``, default when available) the
forward pass runs in bf16 autocast. Weights are fp16 safetensors (what ``load_flow_pocket`` reads)
plus ``flow.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..engine.models.flux import image_ids, pack_latents
from . import flow
from . import model as unet_model
from .train import Log, copy_ema, cosine_lr, encode_pool, scene_pool


@torch.no_grad()
def pooled_clip(clip, tokenizer, captions, batch=1024):
    """The frozen CLIP's pooled vector of every caption (as FluxPipeline encodes them)."""
    out = []
    for i in range(0, len(captions), batch):
        ids = tokenizer(captions[i : i + batch], padding="max_length", max_length=77, truncation=True).input_ids
        out.append(clip(torch.tensor(ids)).pooler_output)
    return torch.cat(out)


def t5_ids(captions, tokenizer):
    ids = tokenizer(captions, padding="max_length", max_length=flow.TEXT_LENGTH, truncation=True).input_ids
    return torch.tensor(ids, dtype=torch.long)


def latent_stats(mean, std, seed):
    """Shift and scale that give the VAE's sampled latents zero mean and unit variance."""
    gen = torch.Generator().manual_seed(seed)
    z = mean.float() + std.float() * torch.randn(mean.shape, generator=gen)
    shift = float(z.mean())
    return {"shift_factor": shift, "scaling_factor": float(1.0 / (z - shift).std())}


def train(t5, transformer, data, args, log, device, state=None):
    """The training loop; yields (step, total, ema, opt) at every snapshot and at the end."""
    mean, std, ids, pooled, empty_ids, empty_pooled, stats = (d.to(device) if torch.is_tensor(d) else d for d in data)
    params = list(t5.parameters()) + list(transformer.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
    step, total = 0, args.steps or 20_000
    if state is not None:  # the interrupted run's plan, unless --steps asks for another
        step, total = state["step"], args.steps or state["total"]
        for e, v in zip(ema, state["ema"]):
            e.copy_(v)
        opt.load_state_dict(state["opt"])
    gen = torch.Generator(device=device).manual_seed(args.seed + 2 + step)
    img_ids, txt_ids = image_ids(8, 8).to(device), torch.zeros(flow.TEXT_LENGTH, 3, device=device)
    t0, t_save, step0 = time.time(), time.time(), step
    t5.train(), transformer.train()
    while step < total:
        if args.seconds and step == step0 + 30 and state is None:
            per_step = (time.time() - t0) / 30
            total = min(total, int(30 + (args.seconds - (time.time() - t0)) / per_step))
            log(f"{per_step * 1000:.0f} ms/step, planned steps {total}")
        idx = torch.randint(0, len(ids), (args.batch,), device=device, generator=gen)
        z0 = mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, device=device, generator=gen)
        z0 = pack_latents((z0 - stats["shift_factor"]) * stats["scaling_factor"])
        drop = torch.rand(args.batch, device=device, generator=gen) < args.caption_dropout
        tok = torch.where(drop[:, None], empty_ids[None], ids[idx])
        vec = torch.where(drop[:, None], empty_pooled[None], pooled[idx])
        t = torch.sigmoid(torch.randn(args.batch, device=device, generator=gen))  # logit-normal(0, 1)
        noise = torch.randn(z0.shape, device=device, generator=gen)
        xt = (1 - t)[:, None, None] * z0 + t[:, None, None] * noise
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, args.lr, 200)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            text = t5(tok).last_hidden_state
            pred = transformer(
                hidden_states=xt,
                timestep=t,
                pooled_projections=vec,
                encoder_hidden_states=text,
                txt_ids=txt_ids,
                img_ids=img_ids,
                return_dict=False,
            )[0]
        loss = F.mse_loss(pred.float(), noise - z0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        if step % 100 == 0 or step == total:
            log(f"step {step}/{total} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e}")
        if args.save_every and time.time() - t_save > args.save_every:
            t_save = time.time()
            yield step, total, ema, opt
    yield step, total, ema, opt


def prepare(args, log):
    """The frozen parts and the pool's precomputed inputs."""
    from ..engine.tokenizer import load_tokenizer

    images, captions = scene_pool(args.pool, args.seed, args.workers)
    log(f"scene pool: {len(images)} images")
    base = unet_model.load_pocket(device="cpu", dtype=torch.float32)
    mean, std = encode_pool(base.vae, images, torch.device("cpu"))
    stats = latent_stats(mean, std, args.seed)
    log(f"latents: shift {stats['shift_factor']:.4f} scale {stats['scaling_factor']:.4f}")
    clip_tok, t5_tok = load_tokenizer(), flow.t5_tokenizer()
    pooled = pooled_clip(base.text_encoder, clip_tok, captions)
    empty_pooled = pooled_clip(base.text_encoder, clip_tok, [""])[0]
    data = (mean, std, t5_ids(captions, t5_tok), pooled, t5_ids([""], t5_tok)[0], empty_pooled, stats)
    log("pool encoded (VAE latents, CLIP pooled vectors, T5 ids)")
    return base, data


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder for weights, logs, samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool", type=int, default=60_000, help="number of generated training scenes")
    p.add_argument("--workers", type=int, default=2, help="processes generating scenes")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 20000; resumed: the run's plan)")
    p.add_argument("--seconds", type=float, default=0, help="wall-time budget (0: none)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--save-every", type=float, default=300, help="seconds between weight snapshots")
    p.add_argument("--resume", action="store_true", help="continue from OUT/resume")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "train.log")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    log(f"args {vars(args)} torch {torch.__version__} device {device} threads {torch.get_num_threads()}")
    base, data = prepare(args, log)  # on the CPU: the pool is encoded once
    t5, transformer = flow.build_components(seed=args.seed)
    state = _load_resume(args.out / "resume", (t5, transformer)) if args.resume else None
    t5.to(device), transformer.to(device)
    if state is not None:
        state["ema"] = [e.to(device) for e in state["ema"]]
    with torch.enable_grad():  # training needs gradients whatever the caller switched off
        _train_and_save(args, t5, transformer, data, log, device, state)


def _train_and_save(args, t5, transformer, data, log, device, state):
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    for step, total, ema, opt in train(t5, transformer, data, args, log, device, state):
        meta = dict(steps=step, planned_steps=total, batch=args.batch, lr=args.lr, pool=args.pool, seed=args.seed)
        meta.update(samples=step * args.batch, device=name, threads=torch.get_num_threads(), torch=torch.__version__)
        _save(args, t5, transformer, ema, opt, step, total, data[-1], meta, log)


def _save(args, t5, transformer, ema, opt, step, total, stats, meta, log):
    """EMA weights as fp16 safetensors (the shipped form) + a full-precision resume point."""
    from safetensors.torch import save_file

    modules = (t5, transformer)
    live = [p.detach().clone() for m in modules for p in m.parameters()]
    copy_ema(modules, ema)
    flow.save_weights(t5, transformer, args.out, stats, meta)
    copy_ema(modules, live)
    resume = args.out / "resume"
    resume.mkdir(exist_ok=True)
    save_file({f"live.{i}": p.cpu().contiguous() for i, p in enumerate(live)}, str(resume / "live.safetensors"))
    save_file({f"ema.{i}": p.cpu().contiguous() for i, p in enumerate(ema)}, str(resume / "ema.safetensors"))
    tensors = {}
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            tensors[f"{i}.{k}"] = v.cpu().contiguous() if torch.is_tensor(v) else torch.tensor(v)
    save_file(tensors, str(resume / "optimizer.safetensors"))
    info = {"param_groups": opt.state_dict()["param_groups"], "step": step, "total": total}
    (resume / "state.json").write_text(json.dumps(info))
    log(f"saved weights at step {step}")


def _load_resume(resume: Path, modules):
    from safetensors.torch import load_file

    params = [p for m in modules for p in m.parameters()]
    live, ema = load_file(str(resume / "live.safetensors")), load_file(str(resume / "ema.safetensors"))
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(live[f"live.{i}"])
    info = json.loads((resume / "state.json").read_text())
    opt_state = {}
    for key, v in load_file(str(resume / "optimizer.safetensors")).items():
        i, k = key.split(".", 1)
        opt_state.setdefault(int(i), {})[k] = v
    return dict(
        step=info["step"],
        total=info["total"],
        ema=[ema[f"ema.{i}"] for i in range(len(params))],
        opt={"state": opt_state, "param_groups": info["param_groups"]},
    )


if __name__ == "__main__":
    main()
