"""The rules alone (model off) on whose a threat is, whose money is at stake and who is counted: a threat a
relative or a classmate made, a price the learner calls fair or a refund already received, a count stressed
as a lower bound, families and employees counted, a number that names something, and near misses. Each case
is a class of phrasing, with its counterpart that must not change."""

from __future__ import annotations

import pytest

from core.classification.classify import ClassificationRules, classify


@pytest.fixture(scope="module")
def rules(rules_alone: ClassificationRules) -> ClassificationRules:
    return rules_alone


@pytest.mark.parametrize(
    "text",
    [
        "我老公说要去找市场监管，我觉得没必要，就想问清楚这80块是什么钱",
        "我弟弟听了很生气，说要去找媒体曝光，我把他拦住了",
        "My sister says she'll report you to 12315, but I'd rather you just stop calling my father.",
        "My classmate's mum told me she'll post about your rude manager on Douyin.",
        "Someone else in my class said she's reporting the deposit policy to 12315.",
        "My husband wanted to post about this on Xiaohongshu, but I'd rather sort it out with you.",
        "孩子他妈说要把这事发微博，我拦住了，就是隔壁琴房声音太大",
        "Another parent in the waiting area was threatening to call the newspaper about the car park.",
        "本来打算打12315的，后来王老师主动打电话道歉了，就算了",
        "My colleague joked he'd report you to the authorities, but honestly I just want an answer.",
        "另一位家长说要去12315投诉，我倒没这个打算，只是希望班主任回消息及时一点。",
    ],
)
def test_a_threat_someone_else_makes_is_general(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert result.severity == "general", result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "我跟老公说了，再不退钱就去12315",  # the writer speaks to him
        "我老公说得对，我明天就去12315",  # and takes it up
        "I told my husband I will go to the newspapers about this",
        "老师说投诉也没用，我还是要去12315",
        # "所有家长的面说": the parents heard it; the threat is the writer's.
        "班主任当着所有家长的面说孩子拖后腿，这口气我咽不下，准备去教育部门反映",
        # Someone else named clauses earlier, or the writer naming themselves.
        "朋友推荐说你们老师专业才报的，结果班主任一周不回消息，再这样下去就去教育局投诉。",
        "作为孩子妈妈真想说一句：再不给个说法就去教育局告你们。",
        "My friend said this school was good but after three weeks of silence I'm filing with 12315.",
        "打了好几次电话都没有人接，客服说再等等，再不处理就去12315投诉。",
    ],
)
def test_the_writers_own_threat_beside_someone_elses_is_major(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert result.severity == "major", result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "The course cost 6,800 and honestly that's a fair price. But the invoice shows an extra 350 yuan.",
        "I really like the course, the 3,200 price was worth it. The receipt has my name spelled wrong.",
        "我妈帮我交的学费，一万二，不是我的钱，就想问一下合同里这条合不合理？",
        "回我电话吧，考试费交的比别人多了一百多，尾号3365",
        "The fee (4,800) is fine by me, honestly good value. My only problem is the pace.",
    ],
)
def test_an_amount_waived_or_a_number_that_names_is_general(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert result.severity == "general", result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "It was not worth it, I paid 5000 for nothing",
        "学费3000能接受吗？现在又要加钱",
        "charged 4,200 for a course that never started",
        "报了8800的CPA班，说好的专属规划师找了三次都不回",
        "孩子的少儿编程课一年6800，学了半年还在拖积木",
        # A waiver, then another sum still owed.
        "课没上完，钱也退了一半，剩下的1500还没退。",
        "退款说已经到账，但我卡里只收到了500，还差2500。",
        "The tuition itself was fine by me but they added a 1200 yuan material fee",
        "They charge every student 1200 for the exam fee and never said so",
    ],
)
def test_an_amount_with_a_waiver_turned_round_stays_major(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert result.severity == "major", result.reasons
    assert result.amount_yuan is not None and result.amount_yuan >= 1000


@pytest.mark.parametrize(
    "text",
    [
        "班主任把在群里提问的学员直接踢出群了，至少五个人",
        "at least six children now repeat these mistakes",
        "three other mothers say their kids are now afraid to go",
        "18 families sent a joint letter to the centre director and nobody replied",
        "Our company enrolled 9 employees. All nine have been taught general conversation only.",
        "The whole Korean B1 class has been waiting 10 days for the exam info",
        "My wife was shouted at by the front desk manager, and two other mums told me the same happened.",
        "Hi, several parents in the Saturday art class have noticed the teacher draws the same picture",
        "All the parents in our WeChat group have the same problem: the class teacher never replies.",
        "Me and the others in the Tuesday group all feel the new teacher doesn't know React at all.",
        "Every learner in the March nursing cohort was charged an extra exam registration fee.",
    ],
)
def test_several_learners_counted_is_major(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert result.severity == "major", result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "我们班至少三十个人，教室太挤",
        "一个班塞了四十多个人",
        "Over 20 people attend this class",
        "我问了至少三个人，都说不归他们管",  # staff asked, not learners sharing it
        "I attended all 12 of the sessions and learned nothing",
    ],
)
def test_a_class_size_is_no_group(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert result.severity == "general", result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "叉车实操那台车刹车不灵，上周倒车差点撞到人",
        "接送孩子的校车司机边开车边打电话还超速",
        "The dorm window on floor 6 has no latch. My roommate nearly leaned out of it last night.",
        "Forklift #3: the seat belt is broken and I don't feel safe driving it tomorrow.",
        "食堂的菜有股馊味，吃完好几个人都不舒服",
    ],
)
def test_a_near_miss_or_a_hazard_on_the_road_is_major(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert result.severity == "major", result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "退费政策有没有松动的可能？",
        "差点被老师气死，讲得太乱了",
        "I'd like a break after lessons",
        "The classroom is too hot to concentrate in the afternoon, please fix the air conditioning.",
        "学校就在马路边，上课的时候特别吵。",
        "The teacher kept speeding through the slides",
        "我报了2024春季班的雅思，老师换了三次",
    ],
)
def test_words_near_a_hazard_are_no_hazard(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert result.severity == "general", result.reasons
