"""The kinds of contact a learner gives besides a platform address — a phone number, an e-mail
address — by the names the database stores: data, never renamed.

Each name is the stem of a learner's columns (`Learner.phone_enc`, `phone_index`, `email_enc`,
`email_index`) and the domain of its blind index: `Vault.blind_index(kind, value)` hashes the kind
with the value, so a renamed kind would orphan every stored index. `EMAIL` is also the mail channel's
name, under which its senders' identities are indexed, and normalized as e-mail addresses are
(`core.storage.privacy.normalize`); existing rows depend on both staying as they are.
"""

from __future__ import annotations

from core.capabilities import AddressKind

PHONE = "phone"
EMAIL = "email"
CONTACT_KINDS = (PHONE, EMAIL)  # in the order a learner's contact is looked up and re-indexed


def contact_kind(address: AddressKind) -> str:
    """The contact kind a channel's sender id is (masking, normalizing): a mailbox is an e-mail
    address, a phone a phone number; a platform id is neither ("id")."""
    return {"mailbox": EMAIL, "phone": PHONE}.get(address, "id")
