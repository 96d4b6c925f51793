"""The rules alone (model off) on wordings that keyword lists used to miss: hazards named without a safety
word, personal data handed on, threats that are someone else's or imagined, prices not in dispute, and a
closed matter told in the same sentence as a new one. Each case is a class of phrasing, not a corpus line."""

from __future__ import annotations

import pytest

from core.classification.classify import ClassificationRules, classify


@pytest.fixture(scope="module")
def rules(rules_alone: ClassificationRules) -> ClassificationRules:
    return rules_alone


@pytest.mark.parametrize(
    "text",
    [
        "放学路上有个男的一直跟了一路，好几个女生都不敢走那条道",
        "配电箱旁边一股焦味，问了半天也没人来看",
        "楼道里有人私拉电线给电瓶车充电",
        "二楼阳台栏杆太矮，小朋友爬上去掉下去怎么办",
        "电线皮破了，里面的铜丝都看得见",
        "洗手间门锁坏了，昨天有陌生人闯进来",
        "吊灯的螺丝松动了，正好在讲台上方",
        "走廊里一股燃气味，好几天了",
        "the shuttle driver smelled like he was drunk",
        "there are exposed wires next to the sink in room 3",
        "a kid went under in the pool and the staff didn't notice",
        "the gate opens onto the road and little ones run straight out",
        "一楼大厅地面湿滑，也没放提示牌",
        "the stairs by the canteen are slippery every morning",
    ],
)
def test_a_hazard_without_a_safety_word_is_major(text: str, rules: ClassificationRules) -> None:
    assert classify(text, rules).severity == "major"


def test_hurtful_words_are_no_injury(rules: ClassificationRules) -> None:
    result = classify("班主任在群里说的话挺伤人的", rules)
    assert (result.category, result.severity) == ("service", "general")


@pytest.mark.parametrize(
    "text",
    [
        "顾问把我的微信推给了外面的合作机构，现在天天有人加我",
        "我的身份证号怎么会在一家中介手里？",
        "课程顾问把我们的电话给了一家做贷款的，天天有人打来",
        "my ID card copy ended up in a sales group chat",
        "my passport scan was emailed to the whole evening group",
    ],
)
def test_data_passed_on_is_a_leak(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert (result.category, result.severity, result.data_leak) == ("other", "major", True)


@pytest.mark.parametrize(
    "text",
    [
        "舍友说要去12315投诉你们，我没那个想法，只是想问作业什么时候批改",
        "my classmate said he would sue, I just want the homework marked on time",
        "要是换个人早就去消协了，我只想顾问回一下消息",
        "本来想发到小红书的，客服后来道歉了，就这样吧",
        "I was ready to go to the press but the refund arrived, the invoice still has a typo though",
        "someone in the group chat said they're going to the newspapers, I only want the slides",
    ],
)
def test_a_threat_not_the_writers_own_or_imagined_is_general(text: str, rules: ClassificationRules) -> None:
    assert classify(text, rules).severity == "general"


@pytest.mark.parametrize(
    "text",
    [
        "下个月再不退我就把你们挂红书",
        "still no refund, next stop is the local news",
    ],
)
def test_a_threat_by_slang_is_major(text: str, rules: ClassificationRules) -> None:
    assert classify(text, rules).severity == "major"


@pytest.mark.parametrize(
    "text",
    [
        "整门课三千二我觉得挺值，就是想换一本练习册",
        "学费两千六能接受，就是教材到得太晚",
        "the 3,900 fee, no issue there, I only need the receipt re-issued",
        "my employer paid the 2,500 directly, I just need the certificate",
        "上次那笔三千的退款早就到账了，现在是想改一下上课时间",
    ],
)
def test_an_amount_not_at_stake_is_general(text: str, rules: ClassificationRules) -> None:
    assert classify(text, rules).severity == "general"


@pytest.mark.parametrize(
    "text",
    [
        "上次说的插座冒火花已经修好了，这次是想说空调太吵",
        "上周报的扶手松动已经修好了，谢谢，就是报修流程太慢",
        "之前那段裸露的电线已经包好了，现在就剩投影仪有点暗",
    ],
)
def test_a_fixed_hazard_in_the_same_sentence_as_a_new_matter_is_general(
    text: str, rules: ClassificationRules
) -> None:
    assert classify(text, rules).severity == "general"


def test_a_fixed_hazard_with_a_complaint_still_open_stays_major(rules: ClassificationRules) -> None:
    assert classify("上次说漏电已经修好了，结果今天插座又冒火花", rules).severity == "major"


@pytest.mark.parametrize(
    "text",
    [
        "这期学员几乎都没收到结业证书",
        "那批的人基本都说作业没人批改",
        "同批学员都发现讲义印错了",
        "整个周六班的课连着停了两次",
        "整个焊接班一学期没摸过焊枪",
        "我们这届考试全军覆没，模拟题跟真题完全不是一回事",
    ],
)
def test_several_learners_counted_without_a_number_is_major(text: str, rules: ClassificationRules) -> None:
    assert classify(text, rules).severity == "major"


@pytest.mark.parametrize(
    "text",
    [
        "这个课都在念PPT，听不下去",
        "这个班主任说话太难听",
        "整个课程的安排都很乱",
    ],
)
def test_a_class_or_course_alone_is_no_group(text: str, rules: ClassificationRules) -> None:
    assert classify(text, rules).severity == "general"


@pytest.mark.parametrize(
    ("text", "at_least"),
    [
        ("they cancelled my place and now want to keep 1500 of what I paid", 1500),
        ("I withdrew in time and you still haven't returned my 2,300", 2300),
        ("分了十二期，一期五百多，机构说没就没了", 6000),
    ],
)
def test_an_amount_kept_returned_or_in_instalments_is_at_stake(
    text: str, at_least: int, rules: ClassificationRules
) -> None:
    result = classify(text, rules)
    assert result.severity == "major"
    assert result.amount_yuan is not None and result.amount_yuan >= at_least


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("老师讲得挺好，可是楼上天天砸墙，吵得受不了", "other"),
        ("实训课老师全程自己操作，不让我们自己动手", "teaching"),
    ],
)
def test_words_that_only_look_like_a_hazard_are_general(
    text: str, category: str, rules: ClassificationRules
) -> None:
    result = classify(text, rules)
    assert (result.category, result.severity) == (category, "general")


@pytest.mark.parametrize(
    ("text", "category"),
    [
        # A teacher's or class teacher's attitude is service, what they teach is teaching.
        ("讲课的老师骂人，问两遍就说我们笨", "service"),
        ("班主任对我们冷言冷语，还大呼小叫", "service"),
        ("答疑老师回复全是复制粘贴的套话", "service"),
        ("the advisor told me to figure it out myself and walked off", "service"),
        ("a sales rep keeps texting me about upgrades", "service"),
        ("the workbook has no answer key for unit 4", "teaching"),
        # Classes cancelled or moved, and kitchen, dorm and shuttle staff, are other.
        ("老师请假，整整两周的课都停了", "other"),
        ("教务把两门课排得时间冲突了", "other"),
        ("宿舍楼的宿管十点就锁门", "other"),
        ("厨房给孩子们吃过期的面包", "other"),
        ("the shuttle driver leaves five minutes early every day", "other"),
        ("recorded lessons won't load on my android phone", "other"),
        # Fees with no fee word of their own.
        ("补考费之前从来没提过，现在要交", "fees"),
        ("I withdrew in week one and I'm still owed the difference", "fees"),
    ],
)
def test_category_by_whose_attitude_and_what_changed(
    text: str, category: str, rules: ClassificationRules
) -> None:
    assert classify(text, rules).category == category


def test_an_amount_at_the_end_of_a_sentence_counts(rules: ClassificationRules) -> None:
    result = classify(
        "I left within the cooling-off period and you still haven't returned my 2,750. Please act.", rules
    )
    assert (result.category, result.severity, result.amount_yuan) == ("fees", "major", 2750)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("the lathe in the workshop has been broken for a month, we can't practise", "teaching"),
        ("the vending machine on the second floor keeps my coins", "other"),
        ("老师挺好，就是新的选课系统太难用了", "other"),
        ("they gave us the wrong exam date in the reminder", "other"),
        # A hazard of practice equipment is broken lab equipment; one of the building stays the building's.
        ("实训室电焊机漏电，差点电到人", "teaching"),
        ("Broken welding screen. Sparks!", "teaching"),
        ("教练车刹车失灵好几次了", "teaching"),
        ("实训室空调坏了，今天三十八度，有个同学直接晕过去了", "other"),
        ("教室插座漏电，碰一下就麻", "other"),
        ("The toilet next to the lab has been broken for two weeks.", "other"),
    ],
)
def test_practice_equipment_is_teaching_and_machines_of_the_building_other(
    text: str, category: str, rules: ClassificationRules
) -> None:
    assert classify(text, rules).category == category


# ---- what those wordings must not catch: ordinary and earnest complaints ------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # A waiver turned round by a negation or a question: the amount is at stake.
        "学费9800，这种教学质量谁能接受？",
        "我一点也不觉得值，8000块学了个寂寞。",
        "退款8000说是已经处理，可是还没全额到账。",
        "老师还可以，就是多扣了我2000块一直不退。",
        # A threat the learner makes, beside a "what if" or someone else in the same sentence.
        "If I were you I would fix this today, otherwise I'm going to the consumer council.",
        "如果我是孩子我也不想上这种课，再这样我就去教育局投诉。",
        "前台一直没有人在我要去12315投诉你们",
        "Someone was rude to me at the front desk and I will report you to the education bureau.",
        # Asking whether money arrived is not saying it did.
        "上周交的3000块学费到账了吗？系统怎么还显示我欠费",
    ],
)
def test_an_earnest_major_complaint_stays_major(text: str, rules: ClassificationRules) -> None:
    assert classify(text, rules).severity == "major"


@pytest.mark.parametrize(
    "text",
    [
        "Where did they get the idea that I agreed to the extra 300 fee?",
        "老师把成绩的问题推给教务",
        "我的成绩单也在你们手里",
        "我们是通过中介报名的，接到通知说课取消了",
        "I'm drowning in homework this week",
        "My grades went under 60 after the new teacher came",
        "孩子成绩掉下去了",
        "退费政策有没有松动的可能？",
        "I saw the news that the course is cancelled",
        "我报的是整个暑假班，老师讲得不好",
        "整个培训班下来我什么都没学到",
        "我报的是一期的课程1980，二期还没开",
    ],
)
def test_everyday_words_raise_no_major_and_no_leak(text: str, rules: ClassificationRules) -> None:
    result = classify(text, rules)
    assert (result.severity, result.data_leak) == ("general", False), result.reasons
