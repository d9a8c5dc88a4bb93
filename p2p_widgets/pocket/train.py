"""Train the pocket model: ``python -m p2p_widgets.pocket.train --out DIR``.

Two phases, both seeded:
1. the VAE on generated scenes (MSE + L1 + a small KL term);
2. the text encoder and UNet together on VAE latents (the latent diffusion recipe): DDPM with
   1000 scaled-linear steps, epsilon prediction, min-SNR-5 loss weights, 10% caption dropout for
   classifier-free guidance, AdamW with warmup and cosine decay, gradient clipping, EMA weights.

Runs on CUDA (bf16 autocast) or CPU. ``--unet-seconds`` caps phase 2 by wall time: after a short
warm-up the number of steps is fixed from the measured speed and logged, so a rerun with
``--unet-steps N`` repeats the same schedule. Resume with ``--resume`` from ``DIR/resume``.
Weights are written as fp16 safetensors (what ``load_pocket`` reads) plus ``pocket.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import model as pocket_model
from .scenes import make_dataset

CHUNK = 4096  # scenes per generator task; each chunk has its own seed so the pool is reproducible


def _chunk(args):
    n, seed = args
    images, captions, _ = make_dataset(n, seed)
    return images, captions


def scene_pool(n: int, seed: int, workers: int):
    """``n`` scenes as (uint8 images (n,32,32,3), captions), generated in parallel, deterministic."""
    jobs = [(min(CHUNK, n - i), seed * 100_003 + i // CHUNK) for i in range(0, n, CHUNK)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as ex:
            parts = list(ex.map(_chunk, jobs))
    else:
        parts = [_chunk(j) for j in jobs]
    return np.concatenate([p[0] for p in parts]), [c for p in parts for c in p[1]]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class Log:
    def __init__(self, path: Path):
        self.path, self.t0 = path, time.time()

    def __call__(self, msg: str):
        line = f"[{time.time() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_vae(vae, images, args, device, log):
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed + 1)
    t0, step = time.time(), 0
    total = args.vae_steps
    vae.train()
    while step < total:
        if args.vae_seconds and step == 50:  # fix the step count from the measured speed
            total = min(total, int(50 + (args.vae_seconds - (time.time() - t0)) / ((time.time() - t0) / 50)))
            log(f"vae: planned steps {total}")
        idx = torch.randint(0, len(images), (args.vae_batch,), generator=gen)
        x = to_tensor(images[idx.numpy()]).to(device)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, args.vae_lr, 100)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample()).sample
        recon = recon.float()
        kl = posterior.kl().mean() / x[0].numel()
        loss = F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 200 == 0 or step == total:
            psnr = -10 * math.log10(F.mse_loss(recon.detach().clamp(-1, 1), x).item() / 4)
            log(f"vae step {step}/{total} loss {loss.item():.4f} psnr {psnr:.1f} dB")
    vae.eval()
    return step


@torch.no_grad()
def encode_pool(vae, images, device, batch=1024):
    """Posterior means and stds of every pool image (latents are sampled from them in training)."""
    means, stds = [], []
    for i in range(0, len(images), batch):
        dist = vae.encode(to_tensor(images[i : i + batch]).to(device)).latent_dist
        means.append(dist.mean.half())
        stds.append(dist.std.half())
    return torch.cat(means), torch.cat(stds)


def tokenize(captions, tokenizer, device):
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids
    return torch.tensor(ids, dtype=torch.long, device=device)


def min_snr_weights(alphas_cumprod, t, gamma=5.0):
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    return torch.clamp(snr, max=gamma) / snr


def train_diffusion(text_encoder, unet, latents, ids, empty_ids, args, device, log, state=None):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(**{k: v for k, v in pocket_model.SCHEDULER_CONFIG.items() if k != "set_alpha_to_one"})
    acp = sched.alphas_cumprod.to(device)
    params = list(text_encoder.parameters()) + list(unet.parameters())
    ema = [p.detach().clone().float() for p in params]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
    step, total = 0, args.unet_steps
    if state is not None:
        step, total = state["step"], max(args.unet_steps, state["step"])
        for e, v in zip(ema, state["ema"]):
            e.copy_(v)
        opt.load_state_dict(state["opt"])
    gen = torch.Generator(device=device).manual_seed(args.seed + 2 + step)
    mean, std = latents
    t0, t_save, step0 = time.time(), time.time(), step
    text_encoder.train(), unet.train()
    while step < total:
        if args.unet_seconds and step == step0 + 50 and state is None:
            per_step = (time.time() - t0) / 50
            total = min(total, int(50 + (args.unet_seconds - (time.time() - t0)) / per_step))
            log(f"unet: {per_step * 1000:.1f} ms/step, planned steps {total}")
        idx = torch.randint(0, len(ids), (args.batch,), device=device, generator=gen)
        z0 = mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, device=device, generator=gen)
        z0 = z0 * args.scaling_factor
        tok = ids[idx]
        drop = torch.rand(args.batch, device=device, generator=gen) < args.caption_dropout
        tok = torch.where(drop[:, None], empty_ids[None], tok)
        t = torch.randint(0, 1000, (args.batch,), device=device, generator=gen)
        noise = torch.randn(z0.shape, device=device, generator=gen)
        zt = acp[t].sqrt()[:, None, None, None] * z0 + (1 - acp[t]).sqrt()[:, None, None, None] * noise
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, args.lr, 300)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            context = text_encoder(tok).last_hidden_state
            pred = unet(zt, t, encoder_hidden_states=context).sample
        per_sample = F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))
        loss = (per_sample * min_snr_weights(acp, t)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach().float() for p in params], 1 - decay)
        if step % 250 == 0 or step == total:
            log(f"unet step {step}/{total} loss {loss.item():.4f} eps-mse {per_sample.mean().item():.4f}")
        if args.save_every and time.time() - t_save > args.save_every:
            t_save = time.time()
            yield step, total, ema, opt
    yield step, total, ema, opt


def copy_ema(modules, ema):
    params = [p for m in modules for p in m.parameters()]
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)


@torch.no_grad()
def sample_grid(pipe, captions, seed, path: Path, steps=50, guidance=5.0):
    from PIL import Image

    gen = torch.Generator(device=pipe.device).manual_seed(seed)
    images = pipe(
        captions,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=gen,
        height=32,
        width=32,
        output_type="np",
    ).images
    tiles = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    cols = 8
    rows = [np.concatenate(list(tiles[r * cols : (r + 1) * cols]), axis=1) for r in range(len(tiles) // cols)]
    Image.fromarray(np.concatenate(rows, axis=0)).resize((32 * 4 * cols, 32 * 4 * len(rows)), Image.NEAREST).save(path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder for weights, logs, samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--pool", type=int, default=120_000, help="number of generated training scenes")
    p.add_argument("--workers", type=int, default=8, help="processes generating scenes")
    p.add_argument("--vae-steps", type=int, default=3000)
    p.add_argument("--vae-seconds", type=float, default=0, help="wall-time cap for the VAE phase (0: none)")
    p.add_argument("--vae-batch", type=int, default=128)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--unet-steps", type=int, default=20_000)
    p.add_argument("--unet-seconds", type=float, default=0, help="wall-time cap for the UNet phase (0: none)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--ema", type=float, default=0.9995)
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--save-every", type=float, default=90, help="seconds between weight snapshots")
    p.add_argument("--resume", action="store_true", help="continue phase 2 from OUT/resume")
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from shipped weights in this folder (fp16 safetensors + pocket.json): "
        "the VAE is kept, phase 2 continues with a fresh optimiser",
    )
    p.add_argument("--no-samples", action="store_true", help="skip the sample grid at the end")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "train.log")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    log(f"args {vars(args)} device {device} torch {torch.__version__}")

    from ..engine.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    # the pool is generated before CUDA initialises: worker processes fork a CUDA-free parent
    images, captions = scene_pool(args.pool, args.seed, args.workers)
    log(f"scene pool: {len(images)} images")
    vae, text_encoder, unet = pocket_model.build_components(seed=args.seed)
    vae.to(device), text_encoder.to(device), unet.to(device)
    state, vae_steps, history = _starting_point(args, (vae, text_encoder, unet), images, device, log)
    latents = encode_pool(vae, images, device)
    if not (args.resume or args.init):
        z = latents[0].float() + latents[1].float() * torch.randn_like(latents[0].float())
        args.scaling_factor = float(1.0 / z.std())
        log(f"latent std {z.std().item():.4f} -> scaling_factor {args.scaling_factor:.4f}")
    vae.register_to_config(scaling_factor=args.scaling_factor)
    ids = tokenize(captions, tokenizer, device)
    empty_ids = tokenize([""], tokenizer, device)[0]

    for step, total, ema, opt in train_diffusion(text_encoder, unet, latents, ids, empty_ids, args, device, log, state):
        run = dict(
            unet_steps=step,
            planned_unet_steps=total,
            batch=args.batch,
            lr=args.lr,
            pool=args.pool,
            seed=args.seed,
            device=str(device),
            torch=torch.__version__,
        )
        meta = dict(
            vae_steps=vae_steps, unet_steps=step + sum(h["unet_steps"] for h in history), history=[*history, run]
        )
        _save(args, vae, text_encoder, unet, ema, opt, step, total, meta, log)
    if not args.no_samples:
        pipe = pocket_model.assemble_pipeline(vae, text_encoder, unet, tokenizer).to(device)
        text_encoder.eval(), unet.eval()
        sample_grid(pipe, captions[:32], args.seed, args.out / "samples.png")
        log("wrote samples.png (first 32 pool captions)")


def _starting_point(args, modules, images, device, log):
    """Resume (--resume), continue shipped weights (--init) or train the VAE first: returns the
    resume state (or None), the VAE's training steps and the earlier runs this one continues."""
    vae, text_encoder, unet = modules
    if args.resume:
        state = _load_resume(args.out / "resume", modules, device)
        args.scaling_factor = state["scaling_factor"]
        return state, state["vae_steps"], []
    if args.init:
        init = pocket_model.load_pocket(device="cpu", dtype=torch.float32, weights_dir=args.init)
        for mine, theirs in zip(modules, (init.vae, init.text_encoder, init.unet)):
            mine.load_state_dict(theirs.state_dict())
        args.scaling_factor = init.vae.config.scaling_factor
        prior = json.loads((args.init / "pocket.json").read_text())["meta"]
        log(f"initialised from {args.init} (scaling_factor {args.scaling_factor:.4f})")
        return None, prior.get("vae_steps", 0), list(prior.get("history", []))
    return None, train_vae(vae, images, args, device, log), []


def _save(args, vae, text_encoder, unet, ema, opt, step, total, meta, log):
    """EMA weights as fp16 safetensors (the shipped form) + a full-precision resume point."""
    from safetensors.torch import save_file

    modules = (text_encoder, unet)
    live = [p.detach().clone() for m in modules for p in m.parameters()]
    copy_ema(modules, ema)
    pocket_model.save_weights(vae, text_encoder, unet, args.out, meta)
    resume = args.out / "resume"
    resume.mkdir(exist_ok=True)
    for name, m in zip(pocket_model.COMPONENTS, (vae, text_encoder, unet)):
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(resume / f"{name}_ema.safetensors"))
    copy_ema(modules, live)  # back to the live weights to keep training
    save_file({f"live.{i}": p.contiguous() for i, p in enumerate(live)}, str(resume / "live.safetensors"))
    opt_tensors, opt_meta = (
        {},
        {
            "param_groups": opt.state_dict()["param_groups"],
            "step": step,
            "total": total,
            "scaling_factor": args.scaling_factor,
            "vae_steps": meta["vae_steps"],
        },
    )
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            opt_tensors[f"{i}.{k}"] = v.contiguous() if torch.is_tensor(v) else torch.tensor(v)
    save_file(opt_tensors, str(resume / "optimizer.safetensors"))
    (resume / "state.json").write_text(json.dumps(opt_meta))
    log(f"saved weights at unet step {step}")


def _load_resume(resume: Path, modules, device):
    from safetensors.torch import load_file

    vae, text_encoder, unet = modules
    for name, m in zip(pocket_model.COMPONENTS, modules):
        m.load_state_dict(load_file(str(resume / f"{name}_ema.safetensors"), device=str(device)))
    ema = [p.detach().clone().float() for m in (text_encoder, unet) for p in m.parameters()]
    live = load_file(str(resume / "live.safetensors"), device=str(device))
    params = [p for m in (text_encoder, unet) for p in m.parameters()]
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(live[f"live.{i}"])
    meta = json.loads((resume / "state.json").read_text())
    flat = load_file(str(resume / "optimizer.safetensors"), device=str(device))
    opt_state = {}
    for key, v in flat.items():
        i, k = key.split(".", 1)
        opt_state.setdefault(int(i), {})[k] = v.cpu() if k == "step" else v
    return dict(
        step=meta["step"],
        total=meta["total"],
        ema=ema,
        scaling_factor=meta["scaling_factor"],
        vae_steps=meta["vae_steps"],
        opt={"state": opt_state, "param_groups": meta["param_groups"]},
    )


if __name__ == "__main__":
    main()
