"""banked_attention, eager PyTorch: the chunked form.

Per bank n the log-decay of token t is ld_t = p_w[t, n] log(lam_{t,n}) <= 0 (lam_n for
every token when decay_logits is [H, N]; per token when it is [B, T, H, N]); within a chunk
of L tokens with cumulative sums Lc, the decay from token s to token t >= s is
exp(Lc_t - Lc_s) <= 1 (computed only on the causal triangle, so nothing overflows).
Then, for one chunk,
    intra_t = sum_{s<=t} (phi(q_t).phi(k_s)) W_ts v_s,  W_ts = sum_n p_r[t,n] exp(Lc_t,n - Lc_s,n) p_w[s,n]
    inter_t = sum_n p_r[t,n] exp(Lc_t,n) phi(q_t) @ S_prev,n     (and the same with z)
    S_end,n = exp(Lc_L,n) S_prev,n + sum_s exp(Lc_L,n - Lc_s,n) p_w[s,n] outer(phi(k_s), v_s)
Only the chunk-to-chunk state passing is a loop (T/L steps). Autograd gives the backward.
"""

import torch
import torch.nn.functional as F

from backends.ops.banked_attention import EPS, check_decay, phi
from backends.registry import implements
from backends.torch._common import ALL_DTYPES, upcast

CHUNK = 64


def _chunks(t, C, L):
    """[B, T, H, X] -> [B, H, C, L, X], zero-padded along T to C * L."""
    B, T, H, X = t.shape
    if C * L != T:
        t = torch.cat([t, t.new_zeros(B, C * L - T, H, X)], dim=1)
    return t.view(B, C, L, H, X).permute(0, 3, 1, 2, 4)


@implements("banked_attention", dtypes=ALL_DTYPES)
def banked_attention(q, k, v, read_logits, write_logits, decay_logits, state=None):
    per_token = check_decay("torch", q, decay_logits)
    out_dtype = q.dtype
    q, k, v, read_logits, write_logits, decay_logits = upcast(q, k, v, read_logits, write_logits, decay_logits)
    B, T, H, Dk = q.shape
    Dv, N = v.shape[-1], read_logits.shape[-1]
    L = min(CHUNK, T)
    C = -(-T // L)
    fq, fk = _chunks(phi(q), C, L), _chunks(phi(k), C, L)  # [B, H, C, L, Dk]
    vc = _chunks(v, C, L)  # [B, H, C, L, Dv]
    p_r = _chunks(torch.softmax(read_logits, dim=-1), C, L)  # [B, H, C, L, N]
    p_w = _chunks(torch.softmax(write_logits, dim=-1), C, L)  # padding tokens write 0
    log_lam = F.logsigmoid(decay_logits)
    # [B, H, C, L, N] per token (padding tokens write 0, so decay 0), else [1, H, 1, 1, N]
    log_lam = _chunks(log_lam, C, L) if per_token else log_lam[None, :, None, None, :]
    Lc = torch.cumsum(p_w * log_lam, dim=3)  # [B, H, C, L, N]

    causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()  # [t, s]
    diff = Lc[:, :, :, :, None, :] - Lc[:, :, :, None, :, :]  # [B, H, C, L(t), L(s), N]
    decay = torch.exp(torch.where(causal[:, :, None], diff, float("-inf")))
    W = torch.einsum("bhctn,bhctsn,bhcsn->bhcts", p_r, decay, p_w)  # [B, H, C, L, L]
    # masked with where, not by W = 0, so a NaN in a later token's key stays out of earlier outputs
    AW = torch.where(causal, (fq @ fk.transpose(-1, -2)) * W, 0.0)  # [B, H, C, L, L]
    num = AW @ vc  # [B, H, C, L, Dv]
    den = AW.sum(-1)  # [B, H, C, L]

    to_end = torch.exp(Lc[:, :, :, -1:, :] - Lc) * p_w  # [B, H, C, L, N]
    U = torch.einsum("bhcsn,bhcsk,bhcsv->bhcnkv", to_end, fk, vc)  # [B, H, C, N, Dk, Dv]
    u = torch.einsum("bhcsn,bhcsk->bhcnk", to_end, fk)  # [B, H, C, N, Dk]
    total = torch.exp(Lc[:, :, :, -1, :])  # [B, H, C, N]
    if state is None:
        S, z = q.new_zeros(B, H, N, Dk, Dv), q.new_zeros(B, H, N, Dk)
    else:
        S, z = upcast(*state)
    S_prev, z_prev = [], []
    for c in range(C):
        S_prev.append(S)
        z_prev.append(z)
        S = total[:, :, c, :, None, None] * S + U[:, :, c]
        z = total[:, :, c, :, None] * z + u[:, :, c]
    read = p_r * torch.exp(Lc)  # [B, H, C, L, N]
    num = num + torch.einsum("bhctn,bhctk,bhcnkv->bhctv", read, fq, torch.stack(S_prev, dim=2))
    den = den + torch.einsum("bhctn,bhctk,bhcnk->bhct", read, fq, torch.stack(z_prev, dim=2))
    o = num / (den + EPS)[..., None]  # [B, H, C, L, Dv]
    o = o.permute(0, 2, 3, 1, 4).reshape(B, C * L, H, Dv)[:, :T]
    return o.to(out_dtype), (S.to(out_dtype), z.to(out_dtype))
