"""Dictionary-based query translation: English questions searched in Chinese notes (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.build.builder import build_index
from rag.embed.models import Models
from rag.retrieve.query import make_query
from rag.retrieve.retrievers import TRANSLATED, TranslatedRetriever
from rag.retrieve.searcher import Searcher
from rag.store import Lexicon, open_store
from rag.store.terms import Terms
from rag.text.dictionary import KEEP_DIGESTS, Dictionary, lemmas
from tests.fake_bm25 import RecordingBM25

SAMPLE = """# CC-CEDICT
專家 专家 [zhuan1 jia1] /expert/specialist/CL:個|个[ge4]/
小米 小米 [Xiao3 mi3] /Xiaomi, Chinese electronics company founded in 2010/
小米 小米 [xiao3 mi3] /millet/
阿里 阿里 [A1 li3] /Ali (proper name)/
時代 时代 [Shi2 dai4] /Time, US weekly news magazine/
時代 时代 [shi2 dai4] /age/era/
準確 准确 [zhun3 que4] /accurate/exact/precise/
精確 精确 [jing1 que4] /accurate/precise/
面貌 面贸 [mian4 mao4] /appearance/features/
特徵 特征 [te4 zheng1] /characteristic/diagnostic property/distinctive feature/trait/feature/
家 家 [jia1] /home/family/expert/
隨機 随机 [sui2 ji1] /according to the situation/random/
種子 种子 [zhong3 zi5] /seed/
判斷 判断 [pan4 duan4] /to judge/to determine/judgment/
僱 雇 [gu4] /variant of 雇[gu4]/
"""


@pytest.fixture(scope="module")
def sample() -> Dictionary:
    return Dictionary.parse(SAMPLE.splitlines())


def test_parse_keeps_short_senses_of_multi_character_words(sample: Dictionary) -> None:
    assert sample.lookup("expert") == ("专家",)  # 家 alone is one character: too ambiguous
    assert sample.lookup("xiaomi") == ("小米",)  # the name before the explaining comma
    assert set(sample.lookup("accurate")) == {"准确", "精确"}
    assert sample.lookup("judge") == ("判断",)  # "to judge" → judge
    assert sample.lookup("according to the situation") == ()  # four words: an explanation


def test_a_capitalised_pinyin_marks_a_proper_noun(sample: Dictionary) -> None:
    assert sample.name_translations("Xiaomi") == ("小米",) and sample.name_translations("millet") == ()
    assert "阿里" in sample.proper  # only ever a name
    assert "小米" not in sample.proper and "时代" not in sample.proper  # also millet, also an era
    assert "专家" not in sample.proper


def test_lemmas_find_the_dictionary_form() -> None:
    assert "expert" in lemmas("experts") and "judge" in lemmas("judged") and "draw" in lemmas("drawing")
    assert "study" in lemmas("studies") and lemmas("class") == ("class",)


def test_translate_keeps_the_words_the_notes_use_most(sample: Dictionary) -> None:
    known = {"专家": 3, "准确": 5, "精确": 1, "特征": 4, "种子": 2, "随机": 2}
    assert sample.translate("Did independent experts judge them accurate?", known, per_phrase=1) == ("专家", "准确")
    assert sample.translate("Did experts judge them accurate?", known, per_phrase=2) == ("专家", "准确", "精确")
    assert sample.translate("the features", known) == ("特征",)  # 面貌 is not in the notes


def test_in_a_chinese_question_only_lower_case_english_is_translated(sample: Dictionary) -> None:
    known = {"小米": 1, "种子": 2, "随机": 2}
    assert set(sample.translate("哪篇换了 random seed 还能对得上", known)) == {"随机", "种子"}
    assert sample.translate("Xiaomi 的那篇论文", known) == ()  # a capitalised word there is a name
    # English the notes write themselves is searched as written, in a Chinese question only
    assert sample.translate("哪篇换了 random seed", {**known, "random": 3}) == ("种子",)
    assert set(sample.translate("Which paper changed the random seed?", {**known, "random": 3})) == {"随机", "种子"}
    assert sample.translate("Which Xiaomi paper?", known) == ("小米",)


def test_chinese_the_notes_never_write_is_searched_in_english(sample: Dictionary) -> None:
    """专家 in a question over English notes: "experts", the form the notes use; a word the notes
    write themselves (随机) needs no translation."""
    assert sample.english("专家") == ("expert", "specialist")
    known = {"experts": 2, "random": 4, "随机": 1}
    assert sample.translate("哪篇请专家判断随机的种子", known) == ("experts",)  # not "random": 随机 is known
    assert sample.translate("哪篇请专家判断随机的种子", {"experts": 2, "random": 4}) == ("experts", "random")


def test_the_bundled_dictionary_loads_offline() -> None:
    cedict = Dictionary.load()
    assert "专家" in cedict.lookup("experts") and "小米" in cedict.lookup("Xiaomi".lower())
    assert "量化" in cedict.lookup("quantization")
    assert cedict.name_translations("Google") == ("谷歌",) and {"阿里", "谷歌"} <= cedict.proper


def test_a_parse_is_cached_and_a_bad_digest_is_parsed_again(sample: Dictionary, tmp_path: Path) -> None:
    """The parsed digest serves the next start (`rag search` pays 0.15 s, not 0.9 s); a damaged one
    or a changed source is parsed again, never trusted."""
    source = tmp_path / "cedict.txt"
    source.write_text(SAMPLE, encoding="utf-8")
    cache = tmp_path / "cache"
    assert Dictionary.load(source, cache) == sample
    (digest,) = cache.iterdir()
    digest.write_text('{"senses": {"expert": ["假的"]}, "names": {}, "proper": []}', encoding="utf-8")
    assert Dictionary.load(source, cache).lookup("expert") == ("假的",)  # the digest is what is read
    digest.write_text("{not json", encoding="utf-8")
    assert Dictionary.load(source, cache) == sample and json.loads(digest.read_text(encoding="utf-8"))
    source.write_text(SAMPLE + "汽車 汽车 [qi4 che1] /car/\n", encoding="utf-8")
    assert Dictionary.load(source, cache).lookup("car") == ("汽车",)  # a changed source is parsed anew
    assert len(list(cache.iterdir())) == 2
    for fruit, zh in (("apple", "苹果"), ("pear", "梨子"), ("plum", "李子"), ("peach", "桃子")):
        source.write_text(SAMPLE + f"{zh} {zh} [guo3] /{fruit}/\n", encoding="utf-8")  # another install
        Dictionary.load(source, cache)
    assert len(list(cache.iterdir())) == KEEP_DIGESTS  # only the newest digests stay
    assert Dictionary.load(source, cache).lookup("peach") == ("桃子",)


def test_translated_retriever_searches_the_translations(sample: Dictionary) -> None:
    chunks = [["小米", "论文", "判断"], ["视频", "生成"]]
    bm25 = RecordingBM25(chunks)
    retriever = TranslatedRetriever(bm25, Lexicon.of(Terms.of(chunks)), sample)
    ranking = retriever.rank(make_query("Which Xiaomi paper learns to judge first?"), 5)
    assert bm25.asked == ["小米", "判断"] and ranking.ids.tolist() == [0]
    assert retriever.rank(make_query("小米的论文"), 5).ids.tolist() == []


def test_an_english_question_finds_a_chinese_entry(make_corpus, models: Models) -> None:
    settings = make_corpus({"n.md": "## JudgeRLVR\n小米的论文，先训练模型的判断能力，再训练生成。\n\n"
                                    "## DreamDojo\n机器人世界模型，从人类视频学习。\n"})
    build_index(settings.index, open_store(settings), models)
    index = open_store(settings).load()
    searcher = Searcher(index, settings.retrieval, settings.index.corpus, models)
    hit = searcher.search("Which Xiaomi paper?", k=1, sources=("bm25", TRANSLATED)).hits[0]
    assert hit.entry.title == "JudgeRLVR" and hit.sources[TRANSLATED].rank == 1 and "bm25" not in hit.sources
    off = settings.updated({"retrieval.translate_weight": 0})
    assert TRANSLATED not in Searcher(index, off.retrieval, off.index.corpus, models).sources
