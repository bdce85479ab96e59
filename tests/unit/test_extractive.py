"""The extractive model: cites its best sentences, abstains when nothing covers the question."""

from __future__ import annotations

from ragline.llm import GenerationRequest, Passage
from ragline.llm.extractive import ExtractiveModel, content_terms, question_names

ABSTAIN = "The documents do not answer this."


def _request(question: str, *texts: str) -> GenerationRequest:
    passages = tuple(Passage(n, text, "Handbook") for n, text in enumerate(texts, start=1))
    return GenerationRequest("", "", question, passages, ABSTAIN)


def test_answers_with_the_covering_sentence_and_cites_it() -> None:
    # GIVEN passages of which the second states the answer
    request = _request(
        "How many vacation days do employees get each year?",
        "The office opens at nine. Parking is free for staff.",
        "Benefits are generous. Employees get 25 vacation days each year. Sick leave is separate.",
    )
    # WHEN the model answers
    completion = ExtractiveModel().generate(request)
    # THEN it quotes that sentence and cites passage 2, and reports estimated usage
    assert completion.text.startswith("Employees get 25 vacation days each year. [2]")
    assert "[1]" not in completion.text
    assert completion.usage.estimated and completion.usage.output_tokens > 0


def test_abstains_when_the_passages_miss_the_question() -> None:
    request = _request(
        "How do I configure a HorizontalPodAutoscaler with kubectl?",
        "Employees get 25 vacation days each year.",
    )
    assert ExtractiveModel().generate(request).text == ABSTAIN


def test_abstains_when_only_a_heading_matches_rather_than_answering_nothing() -> None:
    # GIVEN a passage whose section heading holds most of the question's words and whose
    # sentences hold none (what a filter narrowing the passages to one document can leave)
    passage = Passage(
        1, "Boats are lovely things to have around the bay.", section="Kayak tariff harbour"
    )
    request = GenerationRequest("", "", "kayak tariff harbour moorings", (passage,), ABSTAIN)
    # WHEN the model answers THEN it abstains, not with an empty answer
    assert ExtractiveModel().generate(request).text == ABSTAIN


def test_abstains_without_passages_or_content_words() -> None:
    assert ExtractiveModel().generate(_request("vacation days")).text == ABSTAIN
    assert ExtractiveModel().generate(_request("what is it?", "It is a thing.")).text == ABSTAIN


def test_identifiers_weigh_double() -> None:
    terms = content_terms("What does asyncio.ThreadGate default max_workers to?")
    assert terms["asyncio.threadgate"] == 2.0
    assert terms["max_workers"] == 2.0
    assert terms["threadgate"] == 1.0
    assert terms["default"] == 1.0
    assert "what" not in terms


def test_abstains_when_the_question_names_something_no_passage_mentions() -> None:
    # GIVEN a passage sharing most of the question's ordinary words
    passage = "To enable hardware tracing, set the tracing option in the engine settings."
    # WHEN the question names a product the passage never mentions, THEN the model abstains
    request = _request("How do I enable hardware ray tracing in Unreal Engine 5?", passage)
    assert ExtractiveModel().generate(request).text == ABSTAIN
    # AND an identifier the passages never mention is refused the same way
    request = _request(
        "What does the tracing option of hyperjson.turbo_loads do?",
        "The tracing option makes loads record what it parsed.",
    )
    assert ExtractiveModel().generate(request).text == ABSTAIN


def test_answers_in_the_users_own_words_when_the_names_are_there() -> None:
    # GIVEN a question that shares few words with the passage but names only what it says
    request = _request(
        "My colleague on Windows wants a shell script marked executable for us; how, in Git 2.4?",
        "On Windows, Git records the executable bit with git update-index --chmod=+x.",
    )
    # WHEN the model answers, THEN it quotes the passage (the version number is no name)
    text = ExtractiveModel().generate(request).text
    assert text.startswith("On Windows, Git records the executable bit") and "[1]" in text


def test_question_names_are_proper_nouns_and_identifiers() -> None:
    names = question_names(
        "I'm on Python 3.11. Does GitHub's Team plan use asyncio.ThreadGate or max_workers in v1.2?"
    )
    assert names == {"python", "github", "team", "asyncio.threadgate", "max_workers"}


def test_an_acronym_in_capitals_is_not_the_plural_of_a_shorter_one() -> None:
    # GIVEN a passage that says "LF" (line feed), never "LFS"
    passage = "Git moves the large files out of the history; the LF after each name is optional."
    # WHEN the question names LFS, THEN the passage does not vouch for it
    request = _request("How do I move the large files already in my history into Git LFS?", passage)
    assert ExtractiveModel().generate(request).text == ABSTAIN
    # AND a plural written in lower case still finds its singular
    request = _request(
        "How do I move the large files in my history into Git Worktrees?",
        "Git Worktree moves the large files of the history into a second checkout.",
    )
    assert "[1]" in ExtractiveModel().generate(request).text


def _scored(question: str, *passages: tuple[str, float | None]) -> GenerationRequest:
    numbered = tuple(
        Passage(n, text, "Handbook", similarity=similarity)
        for n, (text, similarity) in enumerate(passages, start=1)
    )
    return GenerationRequest("", "", question, numbered, ABSTAIN)


def test_a_name_counts_only_in_a_passage_about_the_question() -> None:
    question = "How do I move the large video files already in my history into Git LFS?"
    about = "To move large files out of the history, rewrite it with git filter-branch."
    in_passing = "Helpers such as Git-LFS run as sub-processes of the foreground command."
    # GIVEN the only passage naming LFS is far less similar to the question than the best
    request = _scored(question, (about, 0.60), (in_passing, 0.17))
    # WHEN the model answers, THEN the passing mention does not make it answerable
    assert ExtractiveModel().generate(request).text == ABSTAIN
    # AND the same mention in a passage nearly as similar as the best does
    request = _scored(question, (about, 0.60), (in_passing, 0.55))
    assert "[" in ExtractiveModel().generate(request).text
    # AND without similarities (keyword search) every passage vouches, as before
    request = _scored(question, (about, None), (in_passing, None))
    assert "[" in ExtractiveModel().generate(request).text


def test_never_an_empty_answer_that_is_not_an_abstention() -> None:
    from ragline.answer.guard import check_answer

    # GIVEN a passage whose heading holds the question's words but whose sentences hold
    # none of them (the passage covers the question, no sentence does)
    request = GenerationRequest(
        "", "", "Which trampoline safety netting inspection schedule applies to owners?",
        (Passage(1, "Read this before you begin. Keep it somewhere dry.", "Handbook",
                 section="Trampoline safety netting inspection"),),
        ABSTAIN,
    )  # fmt: skip
    # WHEN the model answers
    text = ExtractiveModel().generate(request).text
    # THEN it abstains rather than answering with nothing
    assert text == ABSTAIN
    # AND an empty answer from any model is judged an abstention, whatever the profile
    verdict = check_answer("  ", [], abstain_text=ABSTAIN, require_citations=False)
    assert verdict.abstained and verdict.text == ABSTAIN and verdict.sources == []


def test_a_table_row_answers_read_with_its_header_and_on_the_asked_side() -> None:
    # GIVEN a table whose rows differ by the side of a bound ("under" / "over" 6 hours)
    table = (
        "Flight length | Checked baggage | Meal\n"
        "Under 6 hours | 1 bag of 23 kg | Snack\n"
        "Over 6 hours | 2 bags of 23 kg | Hot meal"
    )
    request = _request("How much checked baggage is allowed on flights over 6 hours?", table)
    # WHEN the model answers
    text = ExtractiveModel().generate(request).text
    # THEN it quotes the row for flights over 6 hours, read as a row with its header
    assert text.startswith("Flight length: Over 6 hours; Checked baggage: 2 bags of 23 kg")
    assert "Under 6 hours" not in text and "[1]" in text


def test_abstains_when_the_package_asked_about_is_never_mentioned() -> None:
    # GIVEN a passage about aligning table columns that never names siunitx
    passage = "To align numbers on the decimal point in a table column, use the dcolumn D type."
    # WHEN the question asks about the siunitx package, THEN the model abstains
    request = _request(
        "How do I align numbers on the decimal point with the siunitx package?", passage
    )
    assert ExtractiveModel().generate(request).text == ABSTAIN
    # AND the same question about a package the passage names is answered
    request = _request(
        "How do I align numbers on the decimal point with the dcolumn package?", passage
    )
    assert "[1]" in ExtractiveModel().generate(request).text


def test_of_equally_good_sentences_the_better_ranked_passage_answers() -> None:
    # GIVEN two passages whose sentences cover the question equally
    request = _request(
        "How do I reset the printer queue?",
        "To reset the printer queue, open Settings and choose Clear queue.",
        "To reset the printer queue, unplug the printer for a minute.",
    )
    # WHEN the model answers, THEN the first passage's sentence comes first
    assert ExtractiveModel().generate(request).text.startswith("To reset the printer queue, open")


def test_abstains_when_no_single_sentence_answers_enough() -> None:
    # GIVEN a passage covering the question only across sentences, each holding one word
    question = "kayak tariff harbour season deposit weekday"
    passage = (
        "The kayak is red and long. The tariff is printed on the wall. "
        "The harbour is north of town. The season starts in spring. "
        "The deposit is kept in a drawer. A weekday is quieter than Sunday."
    )
    # WHEN the extractive model answers
    text = ExtractiveModel().generate(_request(question, passage)).text
    # THEN it abstains rather than answering with nothing
    assert text == ABSTAIN


def test_a_name_is_found_however_the_passage_spells_it() -> None:
    # GIVEN questions naming something the passage spells differently: case, a plural in
    # the passage, hyphens, words written apart or together, optional letters in
    # brackets, camelCase for snake_case, and an acronym the passage spells out
    cases = [
        ("How do I plug in a USB stick?", "Plug the usb stick into the port on the left."),
        ("How do queues compare to FIFOs?", "Queues are FIFOs with a lock around them."),
        ("Is a FIFO queue slow?", "FIFOs are named pipes; the queue is fast."),
        ("Is a FIFO queue slow here?", "A first-in, first-out queue is fast."),
        ("Can I minify Javascript bundles?", "JavaScript bundles can be minified."),
        ("Can I minify JavaScript bundles?", "Java Script bundles can be minified."),
        ("Does microtype work with XeLaTeX?", "Protrusion works with Xe(La)TeX and pdfTeX."),
        ("Which files are read as UTF8 text?", "Text files are read as UTF-8 text."),
        ("How do I set maxWorkers for the pool?", "Set max_workers when the pool is created."),
    ]
    for question, passage in cases:
        # WHEN the model answers
        text = ExtractiveModel().generate(_request(question, passage)).text
        # THEN it quotes the passage instead of abstaining
        assert text != ABSTAIN and "[1]" in text, question


def test_spelling_leeway_does_not_vouch_for_names_the_passage_lacks() -> None:
    # GIVEN passages whose words come near the question's names without being them:
    # initials of three capitals ("large files stored" is not LFS), another product
    cases = [
        ("How do I move large files stored in history into Git LFS?",
         "To move large files stored in the history, rewrite it with filter-branch."),
        ("How do I scale pods with Kubernetes?", "Scale the worker pods with the pool size."),
    ]  # fmt: skip
    for question, passage in cases:
        # WHEN the model answers THEN it abstains
        assert ExtractiveModel().generate(_request(question, passage)).text == ABSTAIN, question


def test_an_option_in_a_list_is_named_with_its_description() -> None:
    # GIVEN a manual's option list: each option on its own line, its description after
    passage = (
        "-e\n\n--edit\n\nWith this option, you can edit the commit message.\n\n"
        "-x\n\nWhen recording the commit, append a line that says which commit "
        "this change was cherry-picked from.\n\n"
        "gc.auto\n\nWhen there are more than this many loose objects, git gc will pack "
        "them. Some commands run it from time to time. The default value is 6700."
    )
    # WHEN the question asks what the description says
    text = (
        ExtractiveModel()
        .generate(
            _request("How do I append a line saying which commit I cherry-picked from?", passage)
        )
        .text
    )
    # THEN the answer names the option the description belongs to
    assert text.startswith("-x: When recording the commit, append a line"), text
    # AND a question asking for a value gets the definition's sentence stating it
    text = (
        ExtractiveModel()
        .generate(_request("How many loose objects pile up before git gc will pack them?", passage))
        .text
    )
    assert text.startswith("gc.auto: When there are more than this many loose objects"), text
    assert "The default value is 6700. [1]" in text


def test_a_name_only_in_the_documents_title_or_section_path_counts() -> None:
    question = "With xcolor, LaTeX stops on an undefined color. Can it warn instead?"
    text = "With the hideerrors option xcolor only warns about an undefined color."

    def answer(title: str, section: str) -> str:
        passage = Passage(1, text, title, section=section)
        request = GenerationRequest("", "", question, (passage,), ABSTAIN)
        return ExtractiveModel().generate(request).text

    # GIVEN a passage whose text never says "LaTeX", from a manual of another title
    # WHEN the question names LaTeX, THEN the model abstains: nothing mentions it
    assert answer("Handbook", "2.13 Color information") == ABSTAIN
    # AND when the passage's document is titled with the name, the title vouches for it
    assert answer("LaTeX News", "2.13 Color information").startswith("With the hideerrors")
    # AND so does the passage's section path
    assert answer("Handbook", "LaTeX News > Issue 32").startswith("With the hideerrors")


def test_the_documents_title_counts_toward_the_answering_sentence() -> None:
    # GIVEN a long question and an option's description that states little of it itself
    question = (
        "In my code listings, spaces inside quoted strings show up as little visible marks."
        " Which package option turns that off?"
    )
    text = "showstringspaces=true|false\n\ntrue lets blank spaces in strings appear as a symbol."

    def answer(title: str) -> str:
        passage = Passage(1, text, title, section="4.3 Options")
        request = GenerationRequest("", "", question, (passage,), ABSTAIN)
        return ExtractiveModel().generate(request).text

    # WHEN the document's title adds nothing, THEN no sentence covers enough: it abstains
    assert answer("Handbook") == ABSTAIN
    # AND WHEN the title is the manual's ("The Listings Package"), THEN it counts toward the
    # sentence, as the section path does, and the description answers
    assert answer("The Listings Package") == (
        "true lets blank spaces in strings appear as a symbol. [1]"
    )


def test_the_users_setting_is_not_a_name_the_passages_must_mention() -> None:
    passage = "To carry a repository to another machine, git bundle packs it into a single file."
    # GIVEN a passage that answers but never says Windows, USB or PDF
    # WHEN the question names them as the user's setting (platform, hardware, file format)
    request = _request(
        "I'm on Windows: how do I carry a repository to another machine as a single file on"
        " a USB stick, or in a PDF?",
        passage,
    )
    # THEN the model answers from the passage
    assert ExtractiveModel().generate(request).text.startswith("To carry a repository")
    # AND a product the passage never mentions is still refused in the same setting
    request = _request(
        "I'm on Windows: how do I carry a repository to another machine as a single file on"
        " Bitbucket Cloud?",
        passage,
    )
    assert ExtractiveModel().generate(request).text == ABSTAIN
    # AND the setting's words are no names of the question, the product's are
    assert question_names("I'm on Windows with a USB stick and a PDF from GitHub.") == {"github"}
