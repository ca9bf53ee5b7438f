"""
CHL/QRY answers: the vectors from the protocol reference, and properties of
the checks built on them.
"""

import hashlib

import pytest
from hypothesis import given, strategies as st

from msnp.msn import challenge


@pytest.mark.parametrize(
    "text, answer",
    [
        ("15570131571988941333", "8f2f5a91b72102cd28355e9fc9000d6e"),
        ("12345678901234567890", "8ba1bb9d6dbf624fee31a2053af5fdd0"),
        ("22299241447072743325", "20dba7e6e9817826b9cd5240cc8add99"),
    ],
)
def test_msnp6_to_10_vectors(text, answer):
    """
    The MSNP6-MSNP10 answer with the msmsgs@msnmsgr.com key matches the
    reference's vectors.
    """
    assert challenge.md5_answer(text, "Q1P7W2E4J9R8U3S5") == answer
    assert challenge.expected_answer(False, text, "msmsgs@msnmsgr.com") == answer


def test_msnp11_vector():
    """
    The MSNP11-MSNP12 answer for MSN 7.0's product matches the reference's
    vector.
    """
    answer = challenge.msnp11_answer("22210219642164014968", "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL")
    assert answer == "85ecb0db8f32113df79ce0892b9a102c"
    assert challenge.expected_answer(True, "22210219642164014968", "PROD0090YUAUV{2B") == answer


def test_msnp11_xors_unmasked_words():
    """
    The final XOR uses the md5 words with their top bits: flipping to the
    masked words (a known wrong port) gives a different answer for a
    challenge whose md5 has top bits set.
    """
    text, pid, key = "22210219642164014968", "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL"
    digest = hashlib.md5((text + key).encode()).digest()
    assert any(digest[i * 4 + 3] & 0x80 for i in range(4))
    answer = bytes.fromhex(challenge.msnp11_answer(text, pid, key))
    # the top bit of each word is the md5's own, since the hash words are < 2**31
    for i in range(4):
        assert (answer[i * 4 + 3] & 0x80) == (digest[i * 4 + 3] & 0x80)


def test_unknown_product_and_wrong_algorithm_fail():
    """
    An unknown product id, or an MSNP11 product under the md5 rule, never
    passes.
    """
    text = "15570131571988941333"
    right = b"8f2f5a91b72102cd28355e9fc9000d6e"
    assert challenge.answer_is_right(False, text, "msmsgs@msnmsgr.com", right)
    assert challenge.answer_is_right(False, text, "msmsgs@msnmsgr.com", right.upper())
    assert not challenge.answer_is_right(False, text, "nobody@example.com", right)
    assert not challenge.answer_is_right(True, text, "msmsgs@msnmsgr.com", right)
    assert not challenge.answer_is_right(False, text, "msmsgs@msnmsgr.com", b"\xff" * 32)


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_answers_are_32_hex_and_only_the_right_one_passes(text):
    """
    For any challenge, both algorithms give 32 lower-case hex characters,
    the right answer passes and a changed one does not.
    """
    for msnp11, pid in ((False, "msmsgs@msnmsgr.com"), (True, "PROD0101{0RM?UBW")):
        answer = challenge.expected_answer(msnp11, text, pid)
        assert len(answer) == 32 and answer == answer.lower()
        int(answer, 16)
        assert challenge.answer_is_right(msnp11, text, pid, answer.encode())
        wrong = ("0" if answer[0] != "0" else "1") + answer[1:]
        assert not challenge.answer_is_right(msnp11, text, pid, wrong.encode())


def test_new_challenges_are_twenty_digits_and_differ():
    """
    Challenges look like the official ones and are not repeated.
    """
    seen = {challenge.new_challenge() for _ in range(100)}
    assert len(seen) == 100
    assert all(len(c) == 20 and c.isdigit() for c in seen)
