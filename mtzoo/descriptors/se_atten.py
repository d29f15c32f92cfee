"""DeePMD-kit's se_atten (``dpa1``) and se_atten_v2 descriptors on an edge graph, without padding.

Per edge :math:`e = (j \\to i)` with normalised environment row
:math:`\\hat{\\mathcal R}_e = (\\mathcal R_e - \\mu_{t_i}) / \\sigma_{t_i}` and type embeddings
:math:`T_t` (a linear net of the one-hot type), the embedding row is

* ``tebd_input_mode = "concat"``: :math:`G_e = \\mathcal N([\\hat s_e, T_{t_j}, T_{t_i}])`
  (:math:`T_{t_i}` left out with ``type_one_side``);
* ``"strip"`` (se_atten_v2): :math:`G_e = \\mathcal N(\\hat s_e)\\,(1 + w_e\\,\\mathcal N_t([T_{t_j}, T_{t_i}]))`,
  :math:`w_e` the switch (only with ``smooth_type_embedding``).

``attn_layer`` gated self-attention layers act on the neighbours of each centre,
:math:`G \\leftarrow \\mathrm{LN}(G + \\mathrm{out}(A V))` with normalised
:math:`q, k, v` of ``in_proj(G)``, :math:`A_{jk} = \\mathrm{softmax}_k(q_j\\cdot k_k / \\sqrt{d})`
(times :math:`\\hat r_j\\cdot\\hat r_k` with ``attn_dotr``).  With ``smooth_type_embedding`` the
logits are :math:`(a_{jk} + 20) w_j w_k - 20` and the weights are multiplied by :math:`w_j w_k`.
Finally :math:`\\mathcal T_i = \\frac1{N_c}\\sum_e G_e^\\top \\hat{\\mathcal R}_e` and
:math:`\\mathcal D_i = \\mathcal T_i (\\mathcal T_i^<)^\\top` as in se_e2_a, followed by
:math:`T_{t_i}` with ``concat_output_tebd``.

DeePMD-kit's padded ``sel`` slots (:math:`N_c = \\mathrm{sel}` per atom, all types mixed) are
added in closed form, so results equal DeePMD-kit whenever an atom has at most ``sel`` neighbours:

* an empty slot has :math:`\\hat{\\mathcal R}^{\\rm pad} = -\\mu_{t_i}/\\sigma_{t_i}` and, as a query,
  sees no key: its row goes through each layer as :math:`G \\leftarrow \\mathrm{LN}(G + b_{\\rm out})`;
  its contribution :math:`(N_c - n_i)\\, G^{\\rm pad\\top}\\hat{\\mathcal R}^{\\rm pad}` is added to
  :math:`\\mathcal T_i`.  With ``"concat"`` (or ``"strip"`` without smoothing) DeePMD feeds the
  empty slot the type embedding of the first atom of the frame, a non-local artefact: mtzoo
  supports those modes only with :math:`\\mu = 0` (``set_davg_zero``, DeePMD's default for se_atten),
  where the empty slots contribute nothing;
* with ``smooth_type_embedding`` every empty (or type-excluded) slot is a key of logit
  :math:`-20` and weight 0, so each softmax denominator gains :math:`(N_c - n^{\\rm kept}_i)e^{-20}`;
  without it such keys are masked out;
* a type-excluded neighbour has :math:`\\hat{\\mathcal R} = 0` and no key: it only counts as an
  empty slot in the smooth denominator.

Shapes
------
edge_vec ``[E, 3]``, edge_index ``[2, E]``, atom_type ``[N]`` -> ``descriptor``
``[N, M1*M2 (+ tebd_dim)]``, ``rot_mat`` ``[N, M1, 3]``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mtzoo import keys as K
from mtzoo.descriptors.base import Descriptor, register
from mtzoo.descriptors.se_common import env_mat_stats, pair_keep_table, warn_excluded_pairs
from mtzoo.descriptors.se_e2_a import neighbor_slots
from mtzoo.nn.common import to_dtype
from mtzoo.nn.env import env_matrix, smooth_switch
from mtzoo.nn.mlp import DenseLayer, EmbeddingNet, _child_seed

ATTNW_SHIFT = 20.0


class _AttentionLayer(nn.Module):
    """One DeePMD ``NeighborGatedAttentionLayer`` (one head) on a per-centre neighbour grid."""

    def __init__(self, embed_dim: int, hidden_dim: int, dotr: bool, scaling_factor: float, normalize: bool,
                 temperature: float | None, trainable_ln: bool, ln_eps: float, smooth: bool, dtype: torch.dtype,
                 seed, trainable: bool) -> None:
        super().__init__()
        self.hidden_dim, self.dotr, self.normalize, self.smooth, self.ln_eps = hidden_dim, dotr, normalize, smooth, ln_eps
        self.scaling = (hidden_dim * scaling_factor) ** -0.5 if temperature is None else float(temperature)
        self.in_proj = DenseLayer(embed_dim, 3 * hidden_dim, None, dtype=dtype, seed=_child_seed(seed, 0), trainable=trainable)
        self.out_proj = DenseLayer(hidden_dim, embed_dim, None, dtype=dtype, seed=_child_seed(seed, 1), trainable=trainable)
        self.ln_weight = nn.Parameter(torch.ones(embed_dim, dtype=dtype), requires_grad=trainable and trainable_ln)
        self.ln_bias = nn.Parameter(torch.zeros(embed_dim, dtype=dtype), requires_grad=trainable and trainable_ln)

    def _ln(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x, (x.shape[-1],), self.ln_weight, self.ln_bias, self.ln_eps)

    def pad_row(self, x: torch.Tensor) -> torch.Tensor:
        """An empty slot (a query without keys): :math:`\\mathrm{LN}(x + b_{\\rm out})`."""
        return self._ln(x + self.out_proj(torch.zeros_like(x[..., :1]).expand(*x.shape[:-1], self.hidden_dim)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, sw: torch.Tensor, r_hat: torch.Tensor,
                n_phantom: torch.Tensor) -> torch.Tensor:
        """x ``[N, W, M]``, mask/sw ``[N, W]``, r_hat ``[N, W, 3]``, n_phantom ``[N]`` -> ``[N, W, M]``."""
        q, k, v = self.in_proj(x).split(self.hidden_dim, dim=-1)
        if self.normalize:
            m3 = mask.unsqueeze(-1)
            q, k, v = (t / torch.where(m3, torch.linalg.vector_norm(t, dim=-1, keepdim=True), torch.ones_like(t[..., :1]))
                       for t in (q, k, v))
        a = torch.bmm(q * self.scaling, k.transpose(1, 2))  # [N, W(query), W(key)]
        key = mask.unsqueeze(1)
        if self.smooth:
            ww = sw.unsqueeze(2) * sw.unsqueeze(1)
            a = (a + ATTNW_SHIFT) * ww - ATTNW_SHIFT
        m = a.masked_fill(~key, -ATTNW_SHIFT).amax(-1, keepdim=True)
        if self.smooth:
            m = m.clamp_min(-ATTNW_SHIFT)
        e = torch.exp((a - m).masked_fill(~key, -math.inf))
        den = e.sum(-1, keepdim=True)
        if self.smooth:  # DeePMD's empty sel slots: keys of logit -20
            den = den + n_phantom.view(-1, 1, 1) * torch.exp(-ATTNW_SHIFT - m)
        w = e / torch.where(den > 0, den, torch.ones_like(den))
        w = w * mask.unsqueeze(2)
        if self.smooth:
            w = w * ww
        if self.dotr:
            w = w * torch.bmm(r_hat, r_hat.transpose(1, 2))
        return self._ln(x + self.out_proj(torch.bmm(w, v)))

    def load_deepmd(self, data: dict) -> None:
        att = data["attention_layer"]
        if att.get("num_heads", 1) != 1 or not att.get("bias", True):
            raise ValueError("se_atten attention with several heads or without bias cannot be imported")
        self.in_proj.load_deepmd(att["in_proj"])
        self.out_proj.load_deepmd(att["out_proj"])
        ln = data["attn_layer_norm"]["@variables"]
        with torch.no_grad():
            self.ln_weight.copy_(torch.as_tensor(np.asarray(ln["w"])))
            self.ln_bias.copy_(torch.as_tensor(np.asarray(ln["b"])))


@register("se_atten")
class DescrptSeAtten(Descriptor):
    """se_atten / dpa1 descriptor (DeePMD-kit semantics; see the module docstring).

    Parameters follow DeePMD-kit's ``descriptor`` keys for ``se_atten`` (``sel`` is one int or a
    list whose sum is used; ``attn_mask`` and ``use_econf_tebd`` must be false).
    """

    mixed_types = True

    def __init__(self, ntypes: int, sel: int | Sequence[int] = 120, rcut: float = 6.0, rcut_smth: float = 0.5,
                 neuron: Sequence[int] = (10, 20, 40), axis_neuron: int = 4, tebd_dim: int = 8,
                 tebd_input_mode: str = "concat", resnet_dt: bool = False, trainable: bool = True,
                 type_one_side: bool = False, attn: int = 128, attn_layer: int = 2, attn_dotr: bool = True,
                 attn_mask: bool = False, exclude_types: Sequence[Sequence[int]] = (), env_protection: float = 0.0,
                 set_davg_zero: bool = True, activation_function: str = "tanh", precision: str = "default",
                 scaling_factor: float = 1.0, normalize: bool = True, temperature: float | None = None,
                 trainable_ln: bool = True, ln_eps: float | None = 1e-5, smooth_type_embedding: bool = False,
                 concat_output_tebd: bool = True, use_econf_tebd: bool = False, use_tebd_bias: bool = False,
                 stripped_type_embedding: bool | None = None, type_map: Sequence[str] | None = None,
                 lmax: int = 1, seed: int | Sequence[int] | None = None) -> None:
        super().__init__()
        if int(lmax) != 1:
            raise ValueError(f"se_atten with lmax = {lmax} is not supported yet (only 1)")
        if stripped_type_embedding is not None:
            tebd_input_mode = "strip" if stripped_type_embedding else "concat"
        if tebd_input_mode not in ("concat", "strip"):
            raise ValueError(f"tebd_input_mode must be 'concat' or 'strip', got {tebd_input_mode!r}")
        if attn_mask:
            raise ValueError("attn_mask = true is not supported (DeePMD-kit 3 does not support it either)")
        if use_econf_tebd:
            raise ValueError("use_econf_tebd = true is not supported yet")
        self.ntypes, self.rcut, self.rcut_smth = ntypes, float(rcut), float(rcut_smth)
        self.sel = [int(sel)] if isinstance(sel, (int, np.integer)) else [int(s) for s in sel]
        self.nnei = sum(self.sel)
        self.neuron, self.axis_neuron, self.tebd_dim = [int(n) for n in neuron], int(axis_neuron), int(tebd_dim)
        self.tebd_input_mode, self.resnet_dt, self.trainable = tebd_input_mode, bool(resnet_dt), bool(trainable)
        self.type_one_side, self.attn, self.attn_layer, self.attn_dotr = bool(type_one_side), int(attn), int(attn_layer), bool(attn_dotr)
        self.exclude_types = [[int(a), int(b)] for a, b in exclude_types]
        self.env_protection, self.set_davg_zero = float(env_protection), bool(set_davg_zero)
        self.activation_function, self.precision = activation_function, precision
        self.scaling_factor, self.normalize, self.temperature = float(scaling_factor), bool(normalize), temperature
        self.trainable_ln, self.ln_eps = bool(trainable_ln), 1e-5 if ln_eps is None else float(ln_eps)
        self.smooth = bool(smooth_type_embedding)
        self.concat_output_tebd, self.use_tebd_bias, self.seed = bool(concat_output_tebd), bool(use_tebd_bias), seed
        self.type_map = None if type_map is None else list(type_map)
        self.dtype = to_dtype(precision)
        self.dim_emb = self.neuron[-1]
        self.dim_out = self.dim_emb * self.axis_neuron + (self.tebd_dim if self.concat_output_tebd else 0)
        self.dim_rot = self.dim_emb
        if not self.set_davg_zero and not (self.tebd_input_mode == "strip" and self.smooth):
            raise ValueError(
                "se_atten: with tebd_input_mode 'concat' (or 'strip' without smooth_type_embedding) DeePMD-kit feeds its "
                "empty sel slots the type embedding of the first atom of the frame; mtzoo reproduces that only with "
                "set_davg_zero = true (DeePMD's default for se_atten), where those slots contribute nothing")
        s0, s2 = _child_seed(seed, 0), _child_seed(seed, 2)
        tebd_in = self.tebd_dim if self.type_one_side else 2 * self.tebd_dim
        self.type_embedding = DenseLayer(ntypes, self.tebd_dim, "linear", resnet=True, bias=self.use_tebd_bias,
                                         dtype=self.dtype, seed=_child_seed(seed, 1), trainable=trainable)
        emb_in = 1 + tebd_in if self.tebd_input_mode == "concat" else 1
        self.embedding = EmbeddingNet(emb_in, self.neuron, activation_function, resnet_dt, self.dtype,
                                      seed=_child_seed(s0, 0), trainable=trainable)
        self.embedding_strip = (EmbeddingNet(tebd_in, self.neuron, activation_function, resnet_dt, self.dtype,
                                             seed=_child_seed(s0, 1), trainable=trainable)
                                if self.tebd_input_mode == "strip" else None)
        self.attention_layers = nn.ModuleList(
            _AttentionLayer(self.dim_emb, self.attn, self.attn_dotr, self.scaling_factor, self.normalize, temperature,
                            self.trainable_ln, self.ln_eps, self.smooth, self.dtype, _child_seed(s2, i), trainable)
            for i in range(self.attn_layer))
        self.register_buffer("davg", torch.zeros(ntypes, 4, dtype=self.dtype))
        self.register_buffer("dstd", torch.ones(ntypes, 4, dtype=self.dtype))
        self.register_buffer("pair_keep", pair_keep_table(ntypes, self.exclude_types, self.dtype))
        if self.exclude_types and not self.set_davg_zero:  # an excluded neighbour replaces an empty slot's -davg/dstd row
            warn_excluded_pairs("se_atten")

    # ------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"type": self.type_name, "sel": self.sel, "rcut": self.rcut, "rcut_smth": self.rcut_smth,
                "neuron": self.neuron, "axis_neuron": self.axis_neuron, "tebd_dim": self.tebd_dim,
                "tebd_input_mode": self.tebd_input_mode, "resnet_dt": self.resnet_dt, "trainable": self.trainable,
                "type_one_side": self.type_one_side, "attn": self.attn, "attn_layer": self.attn_layer,
                "attn_dotr": self.attn_dotr, "exclude_types": self.exclude_types, "env_protection": self.env_protection,
                "set_davg_zero": self.set_davg_zero, "activation_function": self.activation_function,
                "precision": self.precision, "scaling_factor": self.scaling_factor, "normalize": self.normalize,
                "temperature": self.temperature, "trainable_ln": self.trainable_ln, "ln_eps": self.ln_eps,
                "smooth_type_embedding": self.smooth, "concat_output_tebd": self.concat_output_tebd,
                "use_tebd_bias": self.use_tebd_bias, "seed": self.seed}

    def type_embedding_table(self) -> torch.Tensor:
        """:math:`T_t` for every type: ``[nt, tebd_dim]``."""
        eye = torch.eye(self.ntypes, dtype=self.dtype, device=self.davg.device)
        return self.type_embedding(eye)

    def _pair_input(self, tab: torch.Tensor, ti: torch.Tensor, tj: torch.Tensor) -> torch.Tensor:
        return tab[tj] if self.type_one_side else torch.cat([tab[tj], tab[ti]], dim=-1)

    def forward(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        n_atoms, m1, dev = atom_type.shape[0], self.dim_emb, atom_type.device
        src, dst = edge_index[0], edge_index[1]
        tab = self.type_embedding_table()
        # every edge takes a sel slot; type-excluded edges then behave as empty slots with a zero row
        n_all = torch.bincount(dst, minlength=n_atoms).to(self.dtype)
        if self.exclude_types:
            kept = self.pair_keep[atom_type[dst], atom_type[src]] > 0
            src, dst, edge_vec = src[kept], dst[kept], edge_vec[kept]
        n_kept = torch.bincount(dst, minlength=n_atoms).to(self.dtype)
        ti, tj = atom_type[dst], atom_type[src]
        vec = edge_vec.to(self.dtype)
        rr = env_matrix(vec, self.rcut_smth, self.rcut, self.env_protection)
        rr = (rr - self.davg[ti]) / self.dstd[ti]
        sw = smooth_switch(torch.linalg.vector_norm(vec, dim=-1), self.rcut_smth, self.rcut)
        s = rr[:, :1]
        pad = -self.davg / self.dstd  # [nt, 4]: DeePMD's empty-slot row
        if self.tebd_input_mode == "concat":
            g = self.embedding(torch.cat([s, self._pair_input(tab, ti, tj)], dim=-1))
            g_pad = None  # only used when pad == 0 (checked at build and load)
        else:
            g_s = self.embedding(s)
            nt = self.ntypes
            ci = torch.arange(nt, device=dev).repeat_interleave(nt)
            cj = torch.arange(nt, device=dev).repeat(nt)
            g_t = self.embedding_strip(self._pair_input(tab, ci, cj)).view(nt, nt, m1)[ti, tj]
            if self.smooth:
                g_t = g_t * sw.unsqueeze(-1)
            g = g_s * g_t + g_s
            g_pad = self.embedding(pad[:, :1]) if self.smooth else None  # [nt, M1]: type factor times sw = 0
        # attention over the neighbours of each centre (dense [N, W] grid, W = most neighbours)
        slot, counts = neighbor_slots(dst, n_atoms)
        width = int(counts.max()) if n_atoms else 0
        pos = dst * width + slot
        if self.attention_layers and width:
            mask = torch.zeros(n_atoms * width, dtype=torch.bool, device=dev).index_fill_(0, pos, True).view(n_atoms, width)
            x = g.new_zeros(n_atoms * width, m1).index_put_((pos,), g).view(n_atoms, width, m1)
            sw_g = g.new_zeros(n_atoms * width).index_put_((pos,), sw).view(n_atoms, width)
            nrm = torch.linalg.vector_norm(rr[:, 1:], dim=-1, keepdim=True)
            r_hat = rr[:, 1:] / nrm.clamp_min(1e-12)
            r_g = g.new_zeros(n_atoms * width, 3).index_put_((pos,), r_hat).view(n_atoms, width, 3)
            n_phantom = self.nnei - n_kept
            for layer in self.attention_layers:
                x = layer(x, mask, sw_g, r_g, n_phantom)
            g = x.view(n_atoms * width, m1).index_select(0, pos)
        if g_pad is not None:
            for layer in self.attention_layers:
                g_pad = layer.pad_row(g_pad)
        gr = rr.new_zeros(n_atoms, 4, m1).index_add_(0, dst, rr.unsqueeze(-1) * g.unsqueeze(1))
        if g_pad is not None:  # DeePMD's empty slots (excluded neighbours have a zero row instead)
            n_pad = self.nnei - n_all
            gr = gr + n_pad.view(-1, 1, 1) * (pad.unsqueeze(-1) * g_pad.unsqueeze(1))[atom_type]
        gr = gr / self.nnei
        desc = torch.bmm(gr.transpose(1, 2), gr[:, :, : self.axis_neuron]).reshape(n_atoms, -1)
        if self.concat_output_tebd:
            desc = torch.cat([desc, tab[atom_type]], dim=-1)
        return {K.DESCRIPTOR: desc, K.ROT_MAT: gr[:, 1:].transpose(1, 2)}

    # ------------------------------------------------------------------------------------------
    def load_deepmd(self, data: dict) -> None:
        """Copy weights and statistics from DeePMD-kit's serialized dpa1 / se_atten_v2 dict."""
        self.embedding.load_deepmd(data["embeddings"]["networks"][0])
        if self.embedding_strip is not None:
            self.embedding_strip.load_deepmd(data["embeddings_strip"]["networks"][0])
        tl = data["type_embedding"]["embedding"]["layers"]
        if len(tl) != 1:
            raise ValueError("se_atten type embedding with hidden layers cannot be imported")
        self.type_embedding.load_deepmd(tl[0])
        for layer, ld in zip(self.attention_layers, data["attention_layers"]["attention_layers"], strict=True):
            layer.load_deepmd(ld)
        for name, buf in (("davg", self.davg), ("dstd", self.dstd)):
            arr = np.asarray(data["@variables"][name]).reshape(self.ntypes, self.nnei, 4)
            if not np.array_equal(arr, np.broadcast_to(arr[:, :1], arr.shape)):
                raise ValueError(f"DeePMD se_atten {name} varies across sel slots; mtzoo stores one row per type")
            buf.copy_(torch.as_tensor(arr[:, 0]))
        if not (self.tebd_input_mode == "strip" and self.smooth) and bool(self.davg.abs().max() > 0):
            raise ValueError("se_atten: non-zero davg with this tebd_input_mode/smooth_type_embedding cannot be imported "
                             "(DeePMD's empty slots then depend on the first atom of the frame)")

    def compute_stats(self, graphs: Sequence, protection: float = 1e-2) -> None:
        """Environment-matrix statistics per centre type over the ``sel`` slots (DeePMD ``EnvMatStatSe``),
        warning when an atom has more neighbours than ``sel``."""
        holder = _StatsView(self)
        env_mat_stats(holder, graphs, protection, radial_only=False, name=self.type_name)
        self.davg.copy_(holder.davg[:, 0])
        self.dstd.copy_(holder.dstd[:, 0])
        self.max_neighbors = holder.max_neighbors
        most = max((int(torch.bincount(g[K.EDGE_INDEX][1]).max()) for g in graphs if g[K.EDGE_INDEX].numel()), default=0)
        if most > self.nnei:
            warnings.warn(f"{self.type_name}: up to {most} neighbours fall inside rcut={self.rcut} but sel={self.nnei}: "
                          "DeePMD-kit would drop the farthest; mtzoo keeps them all, so this model differs from "
                          "DeePMD-kit for those atoms. Raise sel.", stacklevel=2)


class _StatsView:
    """Adapter presenting the mixed-type descriptor to :func:`env_mat_stats` (one type, ``sel = nnei``)."""

    def __init__(self, d: DescrptSeAtten) -> None:
        self.ntypes, self.rcut, self.rcut_smth, self.env_protection = d.ntypes, d.rcut, d.rcut_smth, d.env_protection
        self.exclude_types, self.pair_keep, self.nnei, self.set_davg_zero, self.dtype = (
            d.exclude_types, d.pair_keep, d.nnei, d.set_davg_zero, d.dtype)
        self.sel = [1 << 30] * d.ntypes  # no per-type check: compute_stats checks the total against sel
        self.davg = torch.zeros(d.ntypes, d.ntypes, 4, dtype=d.dtype)
        self.dstd = torch.ones(d.ntypes, d.ntypes, 4, dtype=d.dtype)
        self.max_neighbors = None


@register("se_atten_v2")
class DescrptSeAttenV2(DescrptSeAtten):
    """se_atten_v2: se_atten with ``tebd_input_mode = "strip"`` and ``smooth_type_embedding = true``."""

    def __init__(self, ntypes: int, set_davg_zero: bool = False, **kwargs) -> None:
        for key in ("tebd_input_mode", "smooth_type_embedding", "stripped_type_embedding"):
            if key in kwargs:
                raise ValueError(f"se_atten_v2 takes no '{key}' (it is always 'strip' with smooth attention)")
        super().__init__(ntypes, set_davg_zero=set_davg_zero, tebd_input_mode="strip", smooth_type_embedding=True, **kwargs)

    def get_config(self) -> dict:
        cfg = super().get_config()
        del cfg["tebd_input_mode"], cfg["smooth_type_embedding"]
        return cfg
