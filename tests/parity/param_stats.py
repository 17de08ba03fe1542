"""Mean, standard deviation and range of a PyTorch model's parameters, as the initialisation
tables of crates/unet/tests/init_stats.rs hold them (used by fastai_init_stats.py and
smp_init_stats.py)."""


def param_stats(model, skip_prefix=None):
    params = []
    for name, p in model.named_parameters():
        if skip_prefix and name.startswith(skip_prefix):
            continue
        t = p.detach().double()
        params.append({
            "name": name,
            "shape": list(p.shape),
            "mean": t.mean().item(),
            "std": t.std().item() if t.numel() > 1 else 0.0,
            "min": t.min().item(),
            "max": t.max().item(),
        })
    return params
