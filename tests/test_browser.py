"""The web demo in a real headless Chromium: the page opens with held-out images encoded and
generations shown; upload an image, get its reconstruction, move a slider and see the image
change, see a bad upload's message. The system's Chromium and
chromedriver are used (Debian: apt-get install chromium chromium-driver); nothing is
downloaded. A screenshot is kept in test-artifacts/."""

import shutil

import numpy as np
import pytest
from PIL import Image

from alae import figures
from alae.data import mnist, source
from alae.images import load_image
from alae.model import load
from alae.run import Run
from tests.helpers import pixels, running

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="no chromium or chromedriver on PATH (apt-get install chromium chromium-driver)")


@pytest.fixture
def browser(monkeypatch):
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium's driver manager may not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1400", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def changed(driver, element_id, old):
    """Wait until an image's src is a PNG different from `old`; return it."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(
        lambda d: (src := d.find_element("id", element_id).get_attribute("src") or "").startswith("data:image/png")
        and src != old)
    return driver.find_element("id", element_id).get_attribute("src")


def test_upload_reconstruct_edit_in_chromium(browser, demo_run, tmp_path, request):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    digit = tmp_path / "digit.png"
    Image.fromarray(mnist.load("test")[0][1234]).save(digit)  # not one of the page's samples
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    model = load(demo_run)
    with running(demo_run) as url:
        browser.get(url + "/")
        WebDriverWait(browser, 60).until(lambda d: len(d.find_elements("css selector", "img[data-sample]")) == 10)
        # the page opens with held-out images 0 and 1 encoded as A and B, and generations shown
        sample = source.figure_images(Run(demo_run).config(), 2)
        preloaded = {slot: changed(browser, slot, None) for slot in ("original-a", "reconstruction", "original-b",
                                                                       "reconstruction-b", "result")}
        assert (pixels(preloaded["original-a"]) == figures.to_uint8(sample[:1])[0, :, :, 0]).all()
        assert (pixels(preloaded["original-b"]) == figures.to_uint8(sample[1:2])[0, :, :, 0]).all()
        assert np.abs(pixels(preloaded["reconstruction"]).astype(int)
                      - figures.to_uint8(model.reconstruct(sample[:1]))[0, :, :, 0]).max() <= 1
        WebDriverWait(browser, 60).until(lambda d: len(d.find_elements("css selector", "#generated img")) == 8)
        browser.find_element("id", "upload").send_keys(str(digit))
        original = pixels(changed(browser, "original-a", preloaded["original-a"]))
        reconstruction = pixels(changed(browser, "reconstruction", preloaded["reconstruction"]))
        x = load_image(digit, 28, 1)
        assert (original == figures.to_uint8(x[None])[0, :, :, 0]).all()
        assert reconstruction.std() > 0  # not a blank image
        assert np.abs(reconstruction.astype(int) - figures.to_uint8(model.reconstruct(x[None]))[0, :, :, 0]).max() <= 1
        before = changed(browser, "result", preloaded["result"])
        assert (pixels(before) == reconstruction).all()  # no edit yet

        slider = browser.find_element("css selector", "input[data-direction='ink']")
        slider.send_keys(Keys.END)  # to t = 3, by the keyboard as a person would
        after = changed(browser, "result", before)
        assert slider.get_attribute("value") == "3"
        assert np.abs(pixels(after).astype(int) - pixels(before)).sum() > 0

        browser.find_element("id", "upload").send_keys(str(junk))
        error = browser.find_element("id", "error")
        WebDriverWait(browser, 30).until(lambda d: error.is_displayed())
        assert "cannot read image upload" in error.text
        artifacts = request.config.rootpath / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        browser.save_screenshot(str(artifacts / "serve-demo.png"))

        shown = browser.find_element("id", "original-a").get_attribute("src")
        browser.find_element("css selector", "img[data-sample='4']").click()  # the next good request works
        changed(browser, "original-a", shown)
        WebDriverWait(browser, 30).until(lambda d: not error.is_displayed())
