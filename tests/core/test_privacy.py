from __future__ import annotations

import pytest

from core.storage.privacy import (
    PrivacyKeyError,
    Vault,
    generate_key,
    mask,
    mask_email,
    mask_name,
    mask_phone,
    normalize,
)

OLD_KEY = generate_key()
NEW_KEY = generate_key()


# --- keys and encryption -----------------------------------------------------------------------------------


def test_generate_key_is_a_usable_distinct_str() -> None:
    key = generate_key()
    assert isinstance(key, str)
    assert len(key) == 44
    assert key != generate_key()
    Vault([key])


@pytest.mark.parametrize("value", ["13812348000", "李明", "li.ming@example.com", "", "emoji 😀 and\nnewline"])
def test_round_trip(value: str) -> None:
    vault = Vault([OLD_KEY])
    token = vault.encrypt(value)
    assert value not in token or value == ""
    assert vault.decrypt(token) == value


def test_encryption_is_randomised() -> None:
    vault = Vault([OLD_KEY])
    assert vault.encrypt("13812348000") != vault.encrypt("13812348000")


def test_optional_round_trip() -> None:
    vault = Vault([OLD_KEY])
    assert vault.encrypt_opt(None) is None
    assert vault.decrypt_opt(None) is None
    token = vault.encrypt_opt("李明")
    assert token is not None
    assert vault.decrypt_opt(token) == "李明"


def test_rotation_keeps_old_tokens_readable() -> None:
    old_vault = Vault([OLD_KEY])
    token = old_vault.encrypt("13812348000")
    rotated_vault = Vault([NEW_KEY, OLD_KEY])
    assert rotated_vault.decrypt(token) == "13812348000"
    # new data is written with the new, first key: the old vault alone cannot read it
    fresh = rotated_vault.encrypt("13812348000")
    with pytest.raises(PrivacyKeyError):
        old_vault.decrypt(fresh)
    assert Vault([NEW_KEY]).decrypt(fresh) == "13812348000"


def test_rotate_re_encrypts_with_first_key() -> None:
    token = Vault([OLD_KEY]).encrypt("li.ming@example.com")
    rotated = Vault([NEW_KEY, OLD_KEY]).rotate(token)
    assert Vault([NEW_KEY]).decrypt(rotated) == "li.ming@example.com"
    with pytest.raises(PrivacyKeyError):
        Vault([OLD_KEY]).decrypt(rotated)


def test_blind_index_survives_rotation() -> None:
    before = Vault([OLD_KEY]).blind_index("phone", "13812348000")
    after = Vault([NEW_KEY, OLD_KEY]).blind_index("phone", "13812348000")
    assert before == after
    # the index is keyed: another key list whose oldest key differs gives another index
    assert Vault([OLD_KEY, NEW_KEY]).blind_index("phone", "13812348000") != before


@pytest.mark.parametrize(
    "token",
    ["garbage", "", "gAAAAA", "日本語", Vault([NEW_KEY]).encrypt("x")],
    # Named, not shown: the token differs at every import (several test processes must agree).
    ids=["garbage", "empty", "short", "not-base64", "other-key"],
)
def test_wrong_key_or_garbage_refused_with_message(token: str) -> None:
    vault = Vault([OLD_KEY])
    with pytest.raises(PrivacyKeyError, match=r"^cannot decrypt personal data: wrong \[privacy\] key\?$"):
        vault.decrypt(token)
    with pytest.raises(PrivacyKeyError, match="wrong"):
        vault.rotate(token)


def test_tampered_token_refused() -> None:
    vault = Vault([OLD_KEY])
    token = vault.encrypt("13812348000")
    tampered = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    with pytest.raises(PrivacyKeyError):
        vault.decrypt(tampered)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "empty"),
        (["not-a-key"], "key #1 of 1 is malformed"),
        ([OLD_KEY, "short"], "key #2 of 2 is malformed"),
        ([OLD_KEY[:-2]], "malformed"),
        ("a-single-string", "not a single string"),
    ],
)
def test_bad_key_lists(keys: list[str], message: str) -> None:
    with pytest.raises(PrivacyKeyError, match=message) as info:
        Vault(keys)
    text = str(info.value)
    assert "\n" not in text
    for key in keys if isinstance(keys, list) else []:
        assert key not in text  # a secret never lands in a log line


def test_key_with_surrounding_whitespace_accepted() -> None:
    token = Vault([OLD_KEY]).encrypt("x")
    assert Vault([f" {OLD_KEY}\n"]).decrypt(token) == "x"


# --- blind index and normalisation -------------------------------------------------------------------------


def test_blind_index_normalises_phone() -> None:
    vault = Vault([OLD_KEY])
    index = vault.blind_index("phone", "13812348000")
    for variant in [
        "+86 138-1234-8000",
        "0086 138 1234 8000",
        "86 13812348000",
        "１３８１２３４８０００",
        " 138 1234 8000 ",
    ]:
        assert vault.blind_index("phone", variant) == index, variant
    assert vault.blind_index("phone", "13812348001") != index


def test_blind_index_email_and_kind() -> None:
    vault = Vault([OLD_KEY])
    assert vault.blind_index("email", " Li.Ming@Example.COM ") == vault.blind_index(
        "email", "li.ming@example.com"
    )
    # equal values of different kinds differ
    assert vault.blind_index("telegram", "13812348000") != vault.blind_index("phone", "13812348000")
    assert vault.blind_index("email", "x") != vault.blind_index("telegram", "x")
    index = vault.blind_index("phone", "13812348000")
    assert len(index) == 64
    int(index, 16)


def test_blind_index_refuses_empty_values() -> None:
    vault = Vault([OLD_KEY])
    for kind, value in [("phone", ""), ("phone", "n/a"), ("email", "  "), ("telegram", "")]:
        with pytest.raises(ValueError, match="empty"):
            vault.blind_index(kind, value)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("phone", "+86 138-1234-8000", "13812348000"),
        ("phone", "0086 13812348000", "13812348000"),
        ("phone", "8613812348000", "13812348000"),
        ("phone", "(021) 6123-4567", "02161234567"),
        ("phone", "+86 10 6123 4567", "861061234567"),  # landline: the country code stays
        ("phone", "+1 (555) 010-0000", "15550100000"),
        ("email", "  Li.Ming@Example.COM\n", "li.ming@example.com"),
        ("telegram", " @LiMing ", "@LiMing"),
        ("Phone", "+86 13812348000", "13812348000"),
    ],
)
def test_normalize(kind: str, value: str, expected: str) -> None:
    assert normalize(kind, value) == expected


# --- masks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("13812348000", "138****8000"),
        ("+86 138 1234 8000", "138****8000"),
        ("0086-138-1234-8000", "138****8000"),
        ("12345612", "****12"),
        ("95512", "****12"),
        ("110", "****"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_mask_phone(phone: str, expected: str) -> None:
    assert mask_phone(phone) == expected


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("li.ming@example.com", "l***@example.com"),
        (" li.ming@example.com ", "l***@example.com"),
        ("@example.com", "***@example.com"),
        ("liming", "l***"),
        ("", ""),
    ],
)
def test_mask_email(email: str, expected: str) -> None:
    assert mask_email(email) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("李明", "李*"),
        ("王小明", "王**"),
        ("Ming Li", "M*** L*"),
        ("  Ming   Li ", "M*** L*"),
        ("明", "明*"),
        ("", ""),
    ],
)
def test_mask_name(name: str, expected: str) -> None:
    assert mask_name(name) == expected


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("phone", "13812348000", "138****8000"),
        ("email", "li.ming@example.com", "l***@example.com"),
        ("name", "王小明", "王**"),
        ("telegram", "@liming", "@***"),
        ("wechat", "wxid_abc", "w***"),
        ("wechat", "", ""),
    ],
)
def test_mask_dispatch(kind: str, value: str, expected: str) -> None:
    assert mask(kind, value) == expected


def test_redact_masks_phone_numbers_and_addresses_in_free_text() -> None:
    from core.storage.privacy import redact

    text = "请打 138 1234 8000 或 +86-139-0000-1111，邮箱 li.ming@example.com；订单号 20261122138123480001"
    assert (
        redact(text) == "请打 138****8000 或 139****1111，邮箱 l***@example.com；订单号 20261122138123480001"
    )
