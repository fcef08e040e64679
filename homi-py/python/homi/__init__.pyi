# Types of the `homi` package. `homi.AsyncMemory` is a thin Python class over
# the native one; its methods and their arguments are the native class's.
from homi._homi import AsyncMemory as AsyncMemory
from homi._homi import Auth as Auth
from homi._homi import Chat as Chat
from homi._homi import ChatStream as ChatStream
from homi._homi import Memory as Memory
from homi._homi import __version__ as __version__
from homi.errors import *  # noqa: F401,F403

__all__: list
