r"""The GRAN generator, its convolutional encoder and decoder, and the discriminator
(Im, Kim, Jiang & Memisevic, 2016, Sec. 3).

The recurrent generator draws **one** latent vector :math:`z` per image and feeds it at every
step. At step :math:`t = 1, \dots, T` the decoder :math:`g` reads :math:`z` together with
:math:`h_{c,t}`, the encoder :math:`f`'s code of the *previous step's output*, and writes a
canvas increment :math:`\Delta C_t`:

.. math::

    h_{c,1} &= 0, \qquad h_{c,t} = f(\Delta C_{t-1}) \quad (t > 1),\\
    \Delta C_t &= g([z, h_{c,t}]),\\
    x &= \sigma\Big(\sum_{t=1}^{T} \Delta C_t\Big) \in (0, 1)^{c \times s \times s}.

The increments are summed *before* the sigmoid, and the data are scaled to :math:`[0, 1]`
(the authors' code; the notes' "tanh" would map to :math:`(-1, 1)`). With :math:`T = 1` the
encoder is never called and the generator is a DCGAN-style decoder of :math:`[z, 0]`.

Shapes: the decoder starts from a :math:`b \times b` map, :math:`b = s / 2^{L}` for
:math:`L` stride-2 transposed convolutions (5×5 kernels, padding 2, output padding 1, as
the authors' cuDNN "deconvolution" with ``border_mode=(2, 2)``), so the image size
:math:`s` must be divisible by :math:`2^L`; the encoder mirrors it with :math:`L` stride-2
convolutions. :class:`GRANGenerator` raises a ``ValueError`` for a size the stack cannot make.
"""

from __future__ import annotations

import torch
from torch import nn

from ..training import check_int

__all__ = ["ConvDecoder", "ConvEncoder", "ConvDiscriminator", "GRANGenerator", "base_size",
           "count_parameters"]


def base_size(image_size: int, layers: int) -> int:
    r"""The side :math:`b = s / 2^L` of the decoder's first feature map; a ``ValueError`` when
    :math:`s` is not a multiple of :math:`2^L` (or :math:`b < 2`), naming the sizes that work."""
    check_int("image_size", image_size, 1)
    check_int("layers", layers, 1)
    b, r = divmod(image_size, 2 ** layers)
    if r or b < 2:
        ok = [2 ** layers * m for m in range(2, 9)]
        raise ValueError(f"image_size {image_size} cannot be produced by {layers} stride-2 layers from a "
                         f"square map of side >= 2: it must be a multiple of {2 ** layers} and at least "
                         f"{2 ** (layers + 1)} (e.g. {ok})")
    return b


def count_parameters(module: nn.Module) -> int:
    """The number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _bn(n: int, two_d: bool) -> nn.Module:
    """Batch norm that always normalises with the statistics of the batch at hand, in training
    and in evaluation alike, as the authors' layers do (their ``testF`` is never set)."""
    return (nn.BatchNorm2d if two_d else nn.BatchNorm1d)(n, track_running_stats=False)


def _widths(width: int, layers: int) -> list[int]:
    """Feature maps from the smallest map outwards: ``width·2^{L-1}, …, width``."""
    return [width * 2 ** (layers - 1 - i) for i in range(layers)]


class ConvDecoder(nn.Module):
    r""":math:`g`: ``(z, h_c)`` → a ``(channels, s, s)`` canvas increment, no output non-linearity
    (the authors' ``forward``). :math:`z` first passes a linear layer with batch norm and tanh
    (size kept); the result, concatenated with :math:`h_c`, a linear layer with batch norm and
    ReLU to ``width·2^{L-1}`` maps of side :math:`b`; then :math:`L` transposed convolutions
    (``kernel``, stride 2, bias) halving the width, ReLU after all but the last, which has
    ``channels`` outputs."""

    def __init__(self, z_dim: int, code_dim: int, image_size: int, channels: int, width: int, layers: int,
                 kernel: int = 5):
        super().__init__()
        for name, v in (("z_dim", z_dim), ("channels", channels), ("width", width), ("kernel", kernel)):
            check_int(name, v, 1)
        b = base_size(image_size, layers)
        w = _widths(width, layers)
        self.z_in = nn.Sequential(nn.Linear(z_dim, z_dim), _bn(z_dim, False), nn.Tanh())
        mods: list[nn.Module] = [nn.Linear(z_dim + code_dim, w[0] * b * b), _bn(w[0] * b * b, False), nn.ReLU(),
                                 nn.Unflatten(1, (w[0], b, b))]
        outs = w[1:] + [channels]
        for i, (c_in, c_out) in enumerate(zip(w, outs)):
            mods.append(nn.ConvTranspose2d(c_in, c_out, kernel, 2, kernel // 2, output_padding=1))
            if i < layers - 1:
                mods.append(nn.ReLU())
        self.net = nn.Sequential(*mods)
        self.code_dim = code_dim

    def forward(self, z: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        v = self.z_in(z)
        return self.net(torch.cat([v, h], 1) if self.code_dim else v)


class ConvEncoder(nn.Module):
    r""":math:`f`: a canvas increment ``(channels, s, s)`` → :math:`h_c` of size ``code_dim``
    (the authors' ``backward``). :math:`L` convolutions (``kernel``, stride 2, no bias) each with
    batch norm and ReLU, widening to ``width·2^{L-1}`` maps of side :math:`b`, then a linear
    layer with batch norm and tanh."""

    def __init__(self, image_size: int, channels: int, width: int, layers: int, code_dim: int, kernel: int = 5):
        super().__init__()
        b = base_size(image_size, layers)
        check_int("code_dim", code_dim, 1)
        w = _widths(width, layers)[::-1]
        mods: list[nn.Module] = []
        c_in = channels
        for c in w:
            mods += [nn.Conv2d(c_in, c, kernel, 2, kernel // 2, bias=False), _bn(c, True), nn.ReLU()]
            c_in = c
        mods += [nn.Flatten(), nn.Linear(c_in * b * b, code_dim), _bn(code_dim, False), nn.Tanh()]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GRANGenerator(nn.Module):
    r"""The recurrent generator (module docstring): ``steps`` = :math:`T \ge 1` decoder calls on
    one :math:`z`, each after the first fed the encoder's code of the previous increment.

    ``z_dim``: size of :math:`z` (and of :math:`h_c`, as in the authors' code); ``dcgan=True``
    makes a plain DCGAN generator: no encoder, the decoder reads :math:`z` alone, ``steps`` must
    be 1. ``width``: the feature maps of the decoder's last hidden layer (the authors' ``ckern``;
    the first map has ``width·2^{L-1}``); ``layers``: :math:`L`; ``kernel``: the (transposed)
    convolutions' size.

    Every batch norm uses the statistics of the batch it is given, so an image depends on the
    other latents of its batch; no randomness is drawn inside (the same batch of :math:`z`
    always gives the same images)."""

    def __init__(self, steps: int = 3, *, z_dim: int = 100, image_size: int = 28, channels: int = 1,
                 width: int = 32, layers: int = 2, kernel: int = 5, dcgan: bool = False):
        super().__init__()
        self.steps = check_int("steps (T)", steps, 1)
        self.z_dim = check_int("z_dim", z_dim, 1)
        if not isinstance(dcgan, bool):
            raise TypeError(f"dcgan must be a bool, got {dcgan!r}")
        if dcgan and steps != 1:
            raise ValueError(f"dcgan=True (no encoder: a DCGAN generator) needs steps=1, got steps={steps}")
        self.dcgan = dcgan
        self.code_dim = 0 if dcgan else z_dim
        self.image_shape = (channels, image_size, image_size)
        self.decoder = ConvDecoder(z_dim, self.code_dim, image_size, channels, width, layers, kernel)
        self.encoder = (None if dcgan or steps == 1 else
                        ConvEncoder(image_size, channels, width, layers, z_dim, kernel))

    def canvas(self, z: torch.Tensor) -> list[torch.Tensor]:
        r"""The increments :math:`\Delta C_1, \dots, \Delta C_T` (before the sigmoid) for ``z``."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be a tensor of shape (batch, {self.z_dim}), got "
                             f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        deltas: list[torch.Tensor] = []
        h = z.new_zeros(len(z), self.code_dim)                   # h_{c,1} = 0
        for t in range(self.steps):
            if t > 0:
                h = self.encoder(deltas[-1])                     # h_{c,t} = f(ΔC_{t-1})
            deltas.append(self.decoder(z, h))                    # ΔC_t = g([z, h_{c,t}]), the same z
        return deltas

    def forward(self, z: torch.Tensor, *, return_steps: bool = False):
        r""":math:`\sigma(\sum_t \Delta C_t)`; with ``return_steps`` also the images
        :math:`\sigma(\sum_{s \le t} \Delta C_s)` after each step, ``(T, batch, c, s, s)``."""
        deltas = self.canvas(z)
        if return_steps:
            partial = torch.sigmoid(torch.stack(deltas).cumsum(0))
            return partial[-1], partial
        return torch.sigmoid(sum(deltas))


class ConvDiscriminator(nn.Module):
    r"""The discriminator (the authors' ``convnet28``): :math:`L` convolutions (``kernel``,
    stride 2, no bias) each with batch norm and ReLU, ``widths`` maps, then a linear layer of
    ``hidden`` tanh units and one linear unit without bias; returns the **logit** :math:`a`,
    :math:`D(x) = \sigma(a)`, shape ``(batch,)``."""

    def __init__(self, image_size: int = 28, channels: int = 1, widths: tuple[int, ...] = (80, 40),
                 hidden: int = 100, kernel: int = 5):
        super().__init__()
        if not (isinstance(widths, tuple) and widths and all(isinstance(w, int) and w >= 1 for w in widths)):
            raise ValueError(f"widths must be a non-empty tuple of ints >= 1, got {widths!r}")
        b = base_size(image_size, len(widths))
        check_int("hidden", hidden, 1)
        self.image_shape = (channels, image_size, image_size)
        mods: list[nn.Module] = []
        c_in = channels
        for c in widths:
            mods += [nn.Conv2d(c_in, c, kernel, 2, kernel // 2, bias=False), _bn(c, True), nn.ReLU()]
            c_in = c
        mods += [nn.Flatten(), nn.Linear(c_in * b * b, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False)]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x must have shape (batch, {', '.join(map(str, self.image_shape))}), got "
                             f"{tuple(x.shape)}")
        return self.net(x)[:, 0]

    def weight_decay(self) -> torch.Tensor:
        r""":math:`\tfrac12 (\lVert W \rVert^2 + \lVert W_y \rVert^2)` over the two linear
        layers' weights, the penalty the authors add to the discriminator's cost
        (``weight_decay_l2``)."""
        lin = [m for m in self.net if isinstance(m, nn.Linear)]
        return 0.5 * sum((m.weight ** 2).sum() for m in lin)
