"""Unrelated text: what a question scores against topics no corpus of this kind is about.

A question's best passage must stand out from what the question scores against text on other
subjects. A sample of the corpus's own passages cannot show that in a small collection about a
single subject, where every passage is "related"; so the confidence compares the best passage
with these sentences on everyday topics (`answer.background_z`, `Assistant.confidence`).
Statements, not questions, and about nothing in particular.
"""

from __future__ import annotations

import contextlib
import weakref

import numpy as np

BACKGROUND = (
    "今天晴转多云,最高气温二十八度,傍晚有阵雨。",
    "这道红烧肉要先焯水,再加冰糖和酱油慢炖一小时。",
    "感冒时多喝温水、注意休息,一般一周左右就能好。",
    "这款手机的电池容量更大,拍照也比上一代清晰。",
    "主队在补时阶段打进一球,以二比一赢下比赛。",
    "这位歌手的新专辑收录了十首歌,下个月开始巡演。",
    "办理签证需要准备护照、照片和银行流水。",
    "海边的酒店旺季价格翻倍,最好提前一个月预订。",
    "每天快走半小时,坚持三个月体重明显下降。",
    "猫咪喜欢在阳光下打盹,也爱追着毛线球玩。",
    "大盘今天小幅收涨,科技板块领涨,成交量有所放大。",
    "黑洞的引力极强,连光都无法从中逃逸。",
    "恐龙在大约六千六百万年前的大灭绝中消失。",
    "电脑蓝屏时可以先重启,再检查最近安装的驱动程序。",
    "用这个函数可以逐行读取文本文件并统计行数。",
    "婚礼当天新郎新娘要早起化妆、接亲和拍照。",
    "孩子写作业拖拉时,家长可以把任务拆成小块。",
    "睡前少看手机、保持卧室安静,有助于入睡。",
    "咖啡因摄入过多会引起心慌和失眠。",
    "这座铁塔高三百多米,每年吸引数百万游客参观。",
    "大熊猫每天要花十几个小时进食竹子。",
    "买车险时可以比较几家公司的报价和理赔服务。",
    "科目二考试包括倒车入库、侧方停车和坡道起步。",
    "初学吉他先练习和弦转换,再学简单的扫弦节奏。",
    "这部电影上映三周,票房已经突破十亿元。",
    "篮球比赛每节十二分钟,共四节。",
    "周末的菜市场里蔬菜新鲜,价格也比超市便宜。",
    "这家咖啡馆的拿铁奶香浓郁,下午常常座无虚席。",
    "地铁新线开通后,从郊区到市中心只要四十分钟。",
    "雨季来临前要检查屋顶,防止漏水。",
    "小区今晚停水,请住户提前储备生活用水。",
    "这本小说讲述了一个少年离家远行的成长故事。",
    "冬季滑雪要注意保暖,并佩戴头盔和护目镜。",
    "牙齿出血可能是牙龈炎,建议及时看牙医。",
    "这款洗衣机有快洗模式,十五分钟就能洗完一桶衣服。",
    "夜空中最亮的星星其实往往是行星。",
    "学习外语最好每天坚持听说读写练习。",
    "花园里的月季开了,红的粉的一大片。",
    "快递一般三天内送达,偏远地区要晚一些。",
    "这场音乐会的门票开售十分钟就被抢光了。",
)


# The vectors depend on the model alone: an index rebuilt and loaded again with the same
# embedder (ui/live.py) reuses them instead of embedding these sentences once more.
_VECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def background_vectors(embedder) -> np.ndarray:
    """BACKGROUND embedded by `embedder` (float32), made once per embedder."""
    with contextlib.suppress(KeyError, TypeError):  # TypeError: not weakly referable
        return _VECTORS[embedder]
    vectors = np.asarray(embedder.encode(list(BACKGROUND)), dtype=np.float32)
    with contextlib.suppress(TypeError):
        _VECTORS[embedder] = vectors
    return vectors
