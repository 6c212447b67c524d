"""Local images: copied in by add, published by build under hashed names, sized in the HTML."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tomllib
from pathlib import Path

import pytest
from lxml import html as lxml_html
from PIL import Image
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.compose.build import build_issue, current_source_hash, load_built
from newsletter.compose.issue import add_articles, load_issue
from newsletter.config import Settings
from newsletter.errors import ContentError

from conftest import EXAMPLE, write

ARCHIVE = "https://millbrook.example.org/archive/" + EXAMPLE + "/"


def picture(path: Path, size: tuple[int, int], colour: str = "red", fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def article(path: Path, body: str, image: str | None = None) -> Path:
    front = f"image: {image}\nimage_alt: A chart\n" if image else ""
    return write(path, f"---\ntitle: Pictures\n{front}---\n\n{body}\n")


def only_article(issue_dir: Path, name: str) -> None:
    """Make `name` the issue's only article, so the build shows just its images."""
    toml = issue_dir / "issue.toml"
    text = re.sub(r"articles = \[[^\]]*\]", f'articles = ["{name}"]', toml.read_text())
    toml.write_text(text, encoding="utf-8")


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def corner(path: Path) -> object:
    with Image.open(path) as image:
        return image.convert("RGB").getpixel((0, 0))


def images_in(html_path: Path) -> list[dict[str, str]]:
    doc = lxml_html.fromstring(html_path.read_bytes())
    return [dict(img.attrib) for img in doc.iter("img")]


# --- build ------------------------------------------------------------------------------------


def test_build_publishes_hashed_resized_images_with_their_size(
    settings: Settings, issue_dir: Path
) -> None:
    picture(issue_dir / "chart.png", (2400, 1200))
    picture(issue_dir / "pics" / "small.jpg", (300, 200), "blue", "JPEG")
    article(
        issue_dir / "story.md",
        '![Small](pics/small.jpg)\n\n<img src="chart.png" alt="Narrow" width="200">\n\n'
        "![Remote](https://cdn.example.org/a.png)",
        image="chart.png",
    )
    only_article(issue_dir, "story.md")
    result = build_issue(settings, issue_dir)

    out = settings.build_dir / EXAMPLE
    chart = next(out.glob("chart-*.png"))
    small = next(out.glob("small-*.jpg"))
    for published in (chart, small):
        digest = hashlib.sha256(published.read_bytes()).hexdigest()[:8]
        assert re.fullmatch(rf"[a-z]+-{digest}\.(png|jpg)", published.name)
    assert size_of(chart) == (1072, 536)  # twice the 536 px column, not 2400
    assert size_of(small) == (300, 200)  # never upscaled
    manifest = json.loads((out / "rendered.json").read_text())
    assert sorted(manifest["images"]) == sorted([chart.name, small.name])
    assert {p.name for p, _ in result.files} >= {chart.name, small.name}

    shown = {(i["src"], i.get("width"), i.get("height")) for i in images_in(out / "email.html")}
    assert (ARCHIVE + chart.name, "536", "268") in shown  # the lead image
    assert (ARCHIVE + chart.name, "200", "100") in shown  # a narrower width asked for
    assert (ARCHIVE + small.name, "300", "200") in shown
    assert ("https://cdn.example.org/a.png", None, None) in shown  # remote: as it was
    assert "chart.png" not in (out / "email.txt").read_text()


def test_metadata_is_stripped_and_the_picture_turned_upright(
    settings: Settings, issue_dir: Path
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: shown turned a quarter
    exif[0x010F] = "Phone maker"
    image = Image.new("RGB", (400, 300), "green")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    (issue_dir / "photo.jpg").write_bytes(buffer.getvalue())
    article(issue_dir / "story.md", "![Photo](photo.jpg)")
    only_article(issue_dir, "story.md")
    build_issue(settings, issue_dir)
    published = next((settings.build_dir / EXAMPLE).glob("photo-*.jpg"))
    with Image.open(published) as shown:
        assert shown.size == (300, 400)
        assert not shown.getexif()
    (img,) = images_in(settings.build_dir / EXAMPLE / "email.html")
    assert (img["width"], img["height"]) == ("300", "400")


def test_a_changed_image_makes_the_build_stale_and_gets_a_new_name(
    settings: Settings, issue_dir: Path
) -> None:
    picture(issue_dir / "chart.png", (100, 50))
    article(issue_dir / "story.md", "![Chart](chart.png)")
    only_article(issue_dir, "story.md")
    first = build_issue(settings, issue_dir)
    old_name = first.rendered.images[0].name
    issue = load_issue(issue_dir, settings)
    assert current_source_hash(settings, issue, first.rendered.templates) == (
        first.rendered.source_hash
    )

    picture(issue_dir / "chart.png", (100, 50), "blue")
    issue = load_issue(issue_dir, settings)
    assert current_source_hash(settings, issue, first.rendered.templates) != (
        first.rendered.source_hash
    )
    _, rebuilt = load_built(settings, issue_dir)  # what send does: rebuilds
    new_name = rebuilt.images[0].name
    assert new_name != old_name
    out = settings.build_dir / EXAMPLE
    assert (out / new_name).is_file() and not (out / old_name).exists()


def test_an_out_folder_keeps_other_files_but_drops_old_images(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preview"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    picture(issue_dir / "chart.png", (100, 50))
    article(issue_dir / "story.md", "![Chart](chart.png)")
    only_article(issue_dir, "story.md")
    old = build_issue(settings, issue_dir, out).rendered.images[0].name
    picture(issue_dir / "chart.png", (100, 50), "blue")
    new = build_issue(settings, issue_dir, out).rendered.images[0].name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.txt", "email.html", "email.txt", "email.eml", "rendered.json", new]
    )
    assert old != new


# --- bad images ------------------------------------------------------------------------------


def test_a_missing_image_names_the_article_and_line(settings: Settings, issue_dir: Path) -> None:
    article(issue_dir / "story.md", "Text.\n\nMore.\n\n![Chart](chart.png)")
    only_article(issue_dir, "story.md")
    with pytest.raises(ContentError) as caught:
        build_issue(settings, issue_dir)
    assert re.search(r"story\.md:9: image 'chart\.png' not found", str(caught.value))
    assert not (settings.build_dir / EXAMPLE).exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"just some text, not a picture", "is not an image email can show"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "is not an image email can show"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "is not an image email can show"),
    ],
)
def test_a_file_that_is_not_an_image_is_one_line(
    settings: Settings, issue_dir: Path, content: bytes, expected: str
) -> None:
    (issue_dir / "chart.png").write_bytes(content)
    article(issue_dir / "story.md", "![Chart](chart.png)")
    only_article(issue_dir, "story.md")
    with pytest.raises(ContentError, match=rf"story\.md:5: image 'chart\.png' ({expected})"):
        build_issue(settings, issue_dir)


def test_a_20_mb_image_is_refused_before_it_is_read(settings: Settings, issue_dir: Path) -> None:
    with (issue_dir / "huge.png").open("wb") as handle:
        handle.truncate(21_000_000)
    article(issue_dir / "story.md", "![Huge](huge.png)")
    only_article(issue_dir, "story.md")
    with pytest.raises(ContentError, match=r"story\.md:5: image 'huge\.png' is 21 MB"):
        build_issue(settings, issue_dir)


def test_a_decompression_bomb_is_refused(settings: Settings, issue_dir: Path) -> None:
    Image.new("1", (12_000, 12_000)).save(issue_dir / "bomb.png")  # tiny file, 144 Mpx
    assert (issue_dir / "bomb.png").stat().st_size < 1_000_000
    article(issue_dir / "story.md", "![Bomb](bomb.png)")
    only_article(issue_dir, "story.md")
    with pytest.raises(ContentError, match=r"bomb\.png' .*too many pixels"):
        build_issue(settings, issue_dir)


def test_an_image_outside_the_issue_folder_is_refused_at_build(
    settings: Settings, issue_dir: Path
) -> None:
    picture(issue_dir.parent / "shared.png", (10, 10))
    article(issue_dir / "story.md", "![Shared](../shared.png)")
    only_article(issue_dir, "story.md")
    with pytest.raises(ContentError, match="outside the issue folder; `newsletter add` copies"):
        build_issue(settings, issue_dir)


def test_cli_build_with_a_missing_image_is_one_line(workspace: Path, issue_dir: Path) -> None:
    article(issue_dir / "story.md", "![Chart](chart.png)")
    only_article(issue_dir, "story.md")
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "build", "welcome"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "story.md:5: image 'chart.png' not found" in line


# --- add --------------------------------------------------------------------------------------


def test_add_copies_the_images_an_article_shows_and_says_so(
    workspace: Path, issue_dir: Path, tmp_path: Path
) -> None:
    downloads = tmp_path / "downloads"
    picture(downloads / "chart.png", (800, 400))
    picture(downloads / "pics" / "small.png", (80, 40), "blue")
    picture(tmp_path / "up.png", (20, 10), "green")
    source = article(
        downloads / "story.md",
        '![Small](pics/small.png)\n\n<img src="../up.png" alt="Up">',
        image="chart.png",
    )
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "add", "welcome", str(source)])
    assert result.exit_code == 0, result.output
    copied = [line.split("/issues/", 1)[-1] for line in result.stdout.splitlines()]
    assert copied == [
        f"{EXAMPLE}/chart.png",
        f"{EXAMPLE}/pics/small.png",
        f"{EXAMPLE}/up.png",  # from ../, so flattened
        f"{EXAMPLE}/story.md",
    ]
    assert result.stdout.startswith("copied ") and "\nadded " in result.stdout
    written = (issue_dir / "story.md").read_text()
    assert 'src="up.png"' in written and "../up.png" not in written
    for name in ("chart.png", "pics/small.png", "up.png"):
        assert (issue_dir / name).read_bytes() != b""
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "build", "welcome"])
    assert result.exit_code == 0, result.output


def test_add_renames_an_image_that_clashes_and_shares_an_identical_one(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    picture(issue_dir / "chart.png", (30, 30), "black")
    picture(tmp_path / "chart.png", (30, 30), "white")
    picture(tmp_path / "same.png", (10, 10), "red")
    picture(issue_dir / "same.png", (10, 10), "red")
    one = article(tmp_path / "one.md", "![Same](same.png)", image="chart.png")
    two = article(tmp_path / "two.md", "![Chart again](chart.png)")
    copied: list[tuple[Path, Path]] = []
    written = add_articles(issue_dir, [one, two], settings, copied=copied)
    assert [target.name for target, _ in copied] == ["chart-2.png"]
    assert "image: chart-2.png" in written[0].read_text()
    assert "![Chart again](chart-2.png)" in written[1].read_text()
    assert corner(issue_dir / "chart-2.png") == (255, 255, 255)
    assert corner(issue_dir / "chart.png") == (0, 0, 0)


def test_add_with_a_missing_image_changes_nothing(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in issue_dir.iterdir()}
    picture(tmp_path / "chart.png", (30, 30))
    good = article(tmp_path / "good.md", "![Chart](chart.png)")
    bad = article(tmp_path / "bad.md", "Intro.\n\n![Gone](gone.png)")
    with pytest.raises(ContentError, match=r"bad\.md:7: image 'gone\.png' not found"):
        add_articles(issue_dir, [good, bad], settings)
    assert {p.name: p.read_bytes() for p in issue_dir.iterdir()} == before


def test_add_that_fails_after_moving_in_takes_everything_out(
    settings: Settings, issue_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure writing issue.toml (a full disk, say) leaves no article and no image."""
    before = sorted(p.name for p in issue_dir.rglob("*"))
    picture(tmp_path / "chart.png", (30, 30))
    source = article(tmp_path / "story.md", "![Chart](chart.png)")
    import newsletter.compose.issue as issue_module

    def full_disk(path: Path, data: str | bytes, **options: object) -> int:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(issue_module, "write_atomic", full_disk)
    with pytest.raises(ContentError, match="No space left on device"):
        add_articles(issue_dir, [source], settings)
    assert sorted(p.name for p in issue_dir.rglob("*")) == before
    order = tomllib.loads((issue_dir / "issue.toml").read_text())["articles"]
    assert "story.md" not in order
