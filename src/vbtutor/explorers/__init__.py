"""Each chapter's explorer: a figure recomputed live from the parameters a reader picks.

One factory per chapter builds a :class:`vbtutor.widgets.Explorer` from the objects the
chapter has computed (a model, trained networks, data), so a chapter's cell is one line
and the render function is tested in ``tests/``. Renders are cheap: whatever needs
training is trained once in the chapter and passed in. The modules follow the book's
parts.
"""

from . import autoencoders, diffusion, flows, foundations, implicit, mixtures
from .autoencoders import *  # noqa: F403
from .diffusion import *  # noqa: F403
from .flows import *  # noqa: F403
from .foundations import *  # noqa: F403
from .implicit import *  # noqa: F403
from .mixtures import *  # noqa: F403

__all__ = [
    *foundations.__all__,
    *autoencoders.__all__,
    *mixtures.__all__,
    *implicit.__all__,
    *flows.__all__,
    *diffusion.__all__,
]
