"""Gated self-attention fuser (GatedSelfAttentionDense): visual tokens attend over [visual | grounding] tokens."""
import torch
import torch.nn.functional as F
from torch import nn

from .constants import CONTEXT_DIM
from .grouped_attention import GroupedMask


class GEGLU(nn.Module):
    """Linear C -> 2*inner, value * GELU(gate) (exact erf GELU)."""

    def __init__(self, dim_in: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * inner)

    def forward(self, x):
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU C -> 4C then Linear 4C -> C, laid out as the official `ff.net.{0,2}`."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, mult * dim), nn.Identity(), nn.Linear(mult * dim, dim))

    def forward(self, x):
        return self.net(x)


def sdpa_attention(q, k, v, heads, mask=None):
    """Default attention with the host's signature: q (B,Nq,H*D), k/v (B,L,H*D), additive mask (B,1,Nq,L)."""
    b = q.shape[0]
    q, k, v = (t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, -1, out.shape[1] * out.shape[-1])


class SelfAttention(nn.Module):
    """Multi-head self-attention, q/k/v without bias, optional mask, any attention function of the host's signature."""

    def __init__(self, query_dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(query_dim, inner, bias=False)
        self.to_v = nn.Linear(query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim))

    def forward(self, x, attn_mask=None, n_query=None, attention=None):
        """Attention over all of x (B,L,C) for its first `n_query` tokens (all by default).

        attn_mask: bool (B, L, L), True = may attend, or an additive float mask (B, 1, L or n_query, L); rows past
        n_query are ignored (the fuser keeps only the visual tokens' outputs, so only they need queries); or a
        GroupedMask (grouped masked attention: `attention` runs unmasked on each group's allowed keys).
        attention: `f(q, k, v, heads, mask=None)` on (B, tokens, heads*dim_head) tensors with an additive float mask
        (B, 1, n_query, L), e.g. the host's optimized attention; plain SDPA by default.
        """
        nq = x.shape[1] if n_query is None else n_query
        attention = attention or sdpa_attention
        if isinstance(attn_mask, GroupedMask):
            return self.to_out(attn_mask.attend(self.to_q(x[:, :nq]), self.to_k(x), self.to_v(x), self.heads, attention))
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                allowed = attn_mask[:, :nq].to(x.device)
                attn_mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill_(
                    ~allowed, float("-inf"))[:, None]
            attn_mask = attn_mask[..., :nq, :]
        out = attention(self.to_q(x[:, :nq]), self.to_k(x), self.to_v(x), self.heads, mask=attn_mask)
        return self.to_out(out)


class GatedSelfAttentionDense(nn.Module):
    """x += s*tanh(alpha_attn)*w*SA(norm1([x, linear(objs)]))[:N]; x += s*tanh(alpha_dense)*w*ff(norm2(x))."""

    def __init__(self, query_dim: int, context_dim: int = CONTEXT_DIM, n_heads: int = 8, d_head: int = None):
        super().__init__()
        d_head = query_dim // n_heads if d_head is None else d_head
        self.linear = nn.Linear(context_dim, query_dim)
        self.attn = SelfAttention(query_dim, n_heads, d_head)
        self.ff = FeedForward(query_dim)
        self.norm1 = nn.LayerNorm(query_dim)
        self.norm2 = nn.LayerNorm(query_dim)
        self.alpha_attn = nn.Parameter(torch.tensor(0.0))
        self.alpha_dense = nn.Parameter(torch.tensor(0.0))

    def forward(self, x, objs, scale=1.0, attn_mask=None, attention=None, weight=None):
        """x (B,N,C), objs (B,184,768); scale float or (B,) tensor; attn_mask None, bool (B, N+184, N+184)
        (True = may attend), additive float (B, 1, N, N+184) or a GroupedMask; attention: see SelfAttention.forward;
        weight None or (B,N,1) per-token scale of both residuals (instance_weight.py)."""
        n_visual = x.shape[1]
        if torch.is_tensor(scale):
            scale = scale.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1)
        tokens = torch.cat([x, self.linear(objs.to(x.dtype))], dim=1)
        attended = self.attn(self.norm1(tokens), attn_mask, n_query=n_visual, attention=attention)
        x = x + scale * torch.tanh(self.alpha_attn) * (attended if weight is None else attended * weight)
        dense = self.ff(self.norm2(x))
        return x + scale * torch.tanh(self.alpha_dense) * (dense if weight is None else dense * weight)
