"""Severity read in context: what a complaint says around its point, and the ways learners write amounts,
groups and hazards that keyword lists alone miss. Each case is a class of phrasing, read with the default
policy."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from core.classification.classify import ClassificationRules, classify, parse_amounts


@pytest.fixture(scope="module")
def rules(rules_alone: ClassificationRules) -> ClassificationRules:
    return rules_alone


def severity(text: str, rules: ClassificationRules) -> str:
    return classify(text, rules).severity


# ---- traditional characters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category", "expected"),
    [
        ("我們這期三十幾個人都被收了一筆場地維護費，問了也沒有收據", "fees", "major"),
        ("學費九千九，退費一直拖著", "fees", "major"),
        ("老師回訊息超慢，服務態度太差", "service", "general"),
    ],
)
def test_traditional_characters_read_as_simplified(
    rules: ClassificationRules, text: str, category: str, expected: str
) -> None:
    result = classify(text, rules)
    assert (result.category, result.severity) == (category, expected)


# ---- matters already closed --------------------------------------------------------------------


def test_a_closed_matter_does_not_make_the_new_complaint_major(rules: ClassificationRules) -> None:
    result = classify(
        "上回被盗刷的事你们已经报警处理了，钱也追回来了，谢谢。这回是教室投影仪坏了一周了", rules
    )
    assert (result.category, result.severity) == ("teaching", "general")
    assert any("closed matter" in reason for reason in result.reasons)
    text = (
        "The last refund issue (the 1,600 one) was resolved last week, thank you. Now the invoice has a typo"
    )
    assert severity(text, rules) == "general"
    assert (
        severity("去年那次甲醛超标的事后来你们也检测整改了，现在没啥问题。就是楼下施工有点吵", rules)
        == "general"
    )


@pytest.mark.parametrize(
    "text",
    [
        "上次说已经处理了，结果到现在还没退，两千块",  # said to be handled, still open
        "之前反映的甲醛问题到现在也没整改",
        "上次说插座修好了，结果今天又冒火花",
        "Last month you said it was sorted, but I still haven't got my 2,000 back",
    ],
)
def test_a_matter_said_closed_but_still_open_stays_major(rules: ClassificationRules, text: str) -> None:
    assert severity(text, rules) == "major"


# ---- threats that are not the writer's, or not meant -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "笑死，app又崩了，崩得我都想报警了",
        "哈哈哈班主任的回复速度堪比蜗牛，我都想去消协投诉蜗牛了（开玩笑）",
        "lol this grammar class is so boring I'm about to call the police on myself",
        "我朋友说她在别的机构遇到这种事直接找了媒体，我就是想说客服回复太慢",
        "差点就打12315了，好在后来学管主动打电话道歉",
        "If I were a more dramatic person I'd be writing to the newspapers about your slow replies",
        "my mom says I should go to the media, but I just want the timetable fixed",
        "抖音上看到你们的广告才报的名，老师讲得还行，就是教室太小",  # where the school was seen
    ],
)
def test_threats_in_jest_hearsay_or_never_made_are_not_major(rules: ClassificationRules, text: str) -> None:
    assert severity(text, rules) == "general"


@pytest.mark.parametrize(
    "text",
    [
        "哈哈，我不是开玩笑，再不退我就去12315",
        "I'm not joking, I will go to the police",
        "再这样我就去市监局那里说理去",
        "录音我已经发给律所的朋友了",
        "Fine, I'll take it to the consumer council",
        "the entire email chain is going up on Reddit tonight",
        "我要在抖音上发视频让大家都看到",
    ],
)
def test_earnest_and_conditional_threats_are_major(rules: ClassificationRules, text: str) -> None:
    assert severity(text, rules) == "major"


# ---- amounts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm still waiting on three thousand two hundred yuan", [3200]),
        ("we paid eighteen hundred for this", [1800]),
        ("the coding class costs five grand", [5000]),
        ("twenty-five hundred yuan", [2500]),
        ("3 thousand yuan", [3000]),  # digits stay as they are
        ("那可是两个多w啊，退课申请交上去四十多天了", [20000]),
        ("交了好几千", [1000]),
        ("每个月还要还八百多，要还两年", [19200]),
        ("a twelve-month subscription at 399 a month", [4788]),
        ("分了12期，每期六百多", [7200]),
    ],
)
def test_amounts_in_words_and_instalments(text: str, expected: list[int]) -> None:
    assert parse_amounts(text) == [Decimal(v) for v in expected]


@pytest.mark.parametrize("text", ["twenty minutes late every time", "one girl in my class", "每个月上两次课"])
def test_number_words_that_are_not_money(text: str) -> None:
    assert parse_amounts(text) == []


def test_an_amount_not_at_stake_is_not_major(rules: ClassificationRules) -> None:
    assert severity("课程价格1980我觉得挺合理，就是老师布置的作业太少了", rules) == "general"
    assert (
        severity("The course was 1,500 but my employer covered it, the teacher never explains", rules)
        == "general"
    )
    assert severity("the course fee is 3,800 which is fine, but the wifi is terrible", rules) == "general"
    assert severity("课程1980，老师布置的作业太少了，钱花得不值", rules) == "major"


# ---- groups ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ("我们这一期三十来号人，到结课一个都没学会", True),
        ("同期的十一个人在群里一对，笔记全是错的", True),
        ("我们五六个要转的同学都卡着", True),
        ("我们仨一起报的名，都被顾问忽悠了", True),
        ("我们这届整整一个班的进度落下了快一个月", True),
        ("跟我同一批进来的基本上没人碰过真机", True),
        ("Basically nobody in the Tuesday night cohort can pass a mock paper", True),
        ("the seven others in my level say exactly the same", True),
        ("me and a bunch of others in the weekend batch were billed an extra fee", True),
        ("18 of the 20 people in my class failed the exam", True),
        ("我们班有四十个人，老师讲得太快", False),  # a class size
        ("报了3个月的学员都可以免费重修一次吗", False),  # months, not people
        ("I've waited the whole year for this lesson", False),
    ],
)
def test_groups_counted_the_ways_learners_count_them(
    rules: ClassificationRules, text: str, major: bool
) -> None:
    assert (severity(text, rules) == "major") is major


# ---- safety -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "三楼那个插排一插上就滋滋响还冒黑烟",
        "机房空调坏了一整周，今天有个女生被扶去医务室",
        "楼梯口的地砖翘起来一块，我被绊了一下，脚踝肿得老高",
        "食堂的饭吃完宿舍里好几个人上吐下泻",
        "my son came home with a swollen wrist after the stair rail came loose in his hand",
        "The extension lead under the front desk is scorched black",
        "a man has twice tried to follow me to the bus stop after class",
        "the air in the basement classroom makes people cough and get headaches",
        "老师打了我家孩子一巴掌",
        "the teacher slapped my son",
    ],
)
def test_hazards_and_injuries_worded_without_the_safety_words(rules: ClassificationRules, text: str) -> None:
    assert severity(text, rules) == "major"


@pytest.mark.parametrize(
    "text",
    [
        "消防安全课的课件还是五年前的，讲的灭火器型号早就淘汰了",  # the whole sentence is the lesson's
        'The "personal safety" workshop on Saturday got cancelled twice',
        "老师讲得我头都晕了，能不能慢一点",
        "前台的小哥很拽，爱答不理的",
        "I'm totally burned out from the homework load",
        "班主任拉我进了一个新群",
        "顾问说找财务，财务说找班主任，踢皮球踢了一周",
        "the teacher talks about electric shocks in the electrician course but never shows us the tester",
    ],
)
def test_safety_words_as_subjects_or_figures_of_speech_are_not_major(
    rules: ClassificationRules, text: str
) -> None:
    assert severity(text, rules) == "general"


# ---- personal data ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "我的学员证照片被用在了你们的招生海报上，没人问过我",
        "the receptionist read out my mum's phone number to the person behind me",
        "Someone from a career agency rang me the day after I enrolled and knew my course",
        "发给我们的账号密码全是123456，谁都能登进去看别人的成绩",
    ],
)
def test_personal_data_passed_on_without_the_leak_words(rules: ClassificationRules, text: str) -> None:
    result = classify(text, rules)
    assert (result.category, result.severity, result.data_leak) == ("other", "major", True)


def test_a_leak_only_heard_of_is_not_one(rules: ClassificationRules) -> None:
    assert severity("有些人说你们会泄露学员信息，是真的吗", rules) == "general"
    assert severity("有些人说你们会卖学员信息，我是不信的", rules) == "general"
    assert severity("你们泄露了我的个人信息", rules) == "major"


# ---- the operator's lists decide ----------------------------------------------------------------------


def test_without_the_context_lists_the_old_reading_returns(rules: ClassificationRules) -> None:
    # The rules alone: the model may take back a joking threat of its own accord (test_classify_model).
    bare = replace(rules, jest_cues=(), settled_cues=(), amount_waivers=(), threat_disowners=(), model=False)
    assert severity("笑死，app又崩了，崩得我都想报警了", bare) == "major"
    assert severity("课程价格1980我觉得挺合理，就是作业太少", bare) == "major"
    assert severity("上次多扣的两千块已经退到账了，谢谢。这次想问发票什么时候开", bare) == "major"
