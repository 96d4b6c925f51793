"""What the complaint mailbox can do, as the core asks it (`core.capabilities`)."""

from core.capabilities import Capabilities

# A sender id is the learner's e-mail address; answers thread by the ticket number in the subject
# and by Message-ID. No length limit worth splitting for.
CAPABILITIES = Capabilities(name="email", address="mailbox", subjects=True)
