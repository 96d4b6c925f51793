"""What the hotline's voicemail can do, as the core asks it (`core.capabilities`)."""

from core.capabilities import Capabilities

# A caller is known by their phone number and is called back; nothing can be written to a voicemail.
CAPABILITIES = Capabilities(name="voicemail", writes_back=False, address="phone", calls_back=True)
