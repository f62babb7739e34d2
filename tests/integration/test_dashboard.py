"""The live dashboard (GET /) in a real browser: Debian's headless Chromium driven by Selenium
(chromium-driver, python3-selenium) against a 3-node mesh. The page loads from the node alone,
lists the members as alive, shows jobs as they run, and shows a job owner killed with -9 as dead
and its job taken over — all
from the node's server-sent events and API, with nothing fetched from anywhere else.

MESHWORK_SCREENSHOT=path saves a screenshot of the page after the kill (docs/dashboard.png is made
this way). The test is skipped, saying why, when Chromium or Selenium is not installed.
"""

import json
import os
import shutil
import unittest

from harness import scaled
from test_mesh import Mesh

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # python3-selenium missing: skipped below
    webdriver = None

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@unittest.skipIf(webdriver is None or not os.path.exists(CHROMEDRIVER),
                 "needs python3-selenium, chromium and chromium-driver (make test installs them)")
class Dashboard(Mesh):

    def browser(self):
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1400,900", "--no-first-run", "--disable-extensions",
                  "--user-data-dir=" + os.path.join(self.tmp, "chromium")):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_path=os.devnull),
                                  options=opts)
        self.addCleanup(driver.quit)
        driver.set_page_load_timeout(scaled(30))
        return driver

    # The page re-renders its tables every second and on every event, so a row found by one
    # WebDriver call may be gone by the next: each read (and click) is one script in the page.

    def member_states(self, driver):
        return dict(driver.execute_script(
            "return Array.from(document.querySelectorAll('#members tbody tr'))"
            ".map(r => [r.dataset.member, r.dataset.state]);"))

    def job_rows(self, driver):
        return set(driver.execute_script(
            "return Array.from(document.querySelectorAll('#jobs tbody tr'))"
            ".map(r => r.dataset.job);"))

    def click_job(self, driver, job_id):
        """Clicks the job's row once it is on the page; False while it is not."""
        return driver.execute_script(
            "const r = Array.from(document.querySelectorAll('#jobs tbody tr'))"
            ".find(r => r.dataset.job === arguments[0]);"
            "if (!r) return false; r.click(); return true;", job_id)

    def test_the_page_shows_members_jobs_and_a_killed_owner_as_dead_and_taken_over(self):
        nodes = self.start_mesh(3, ["--profile", "local"])
        # A long job first, so the page can watch its owner die and another node take it over
        # (long enough to be still running however slowly the browser starts).
        r = self.client(nodes[0]).post("/v1/jobs", json.dumps(
            {"type": "sleep", "payload": {"ms": 30000}, "max_attempts": 2}))
        self.assertEqual(r.status, 202, r)
        long_job = r.json()
        owner = next(n for n in nodes if n.name == long_job["owner"])
        page_node, other = [n for n in nodes if n is not owner]
        driver = self.browser()
        driver.get(page_node.url + "/")
        self.assertEqual(driver.title, "meshwork")
        wait = WebDriverWait(driver, scaled(30), poll_frequency=0.1)
        wait.until(lambda d: d.find_element(By.ID, "conn").text == "live")
        wait.until(lambda d: self.member_states(d) == {n.name: "alive" for n in nodes})
        self.assertEqual(driver.find_element(By.ID, "self").text, page_node.name)
        # The ring is drawn from /v1/cluster/ring: one arc or more per member.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ring path")) >= 3)

        # Jobs appear as the node's events report them.
        c = self.client(other)
        ids = []
        for i in range(3):
            r = c.post("/v1/jobs", json.dumps({"type": "echo", "payload": {"n": i}}))
            self.assertEqual(r.status, 202, r)
            ids.append(r.json()["id"])
        wait.until(lambda d: self.job_rows(d) >= set(ids))

        # Kill the long job's owner: the page shows it dead and the takeover, without a reload.
        self.wait_until("the long job to run",
                        lambda: self.client(page_node).get("/v1/jobs/" + long_job["id"])
                        .json()["state"] == "running", 30)
        owner.kill9()
        WebDriverWait(driver, scaled(60), poll_frequency=0.2).until(
            lambda d: self.member_states(d).get(owner.name) == "dead")
        states = self.member_states(driver)
        self.assertEqual(states[page_node.name], "alive", states)
        self.assertEqual(states[other.name], "alive", states)
        WebDriverWait(driver, scaled(60), poll_frequency=0.2).until(
            lambda d: ("owner %s dead" % owner.name) in d.find_element(By.ID, "failovers").text)
        self.assertIn("takes over", driver.find_element(By.ID, "failovers").text)
        # Clicking a job shows its history, read from the node.
        wait.until(lambda d: self.click_job(d, ids[0]))
        wait.until(lambda d: "succeeded" in d.find_element(By.ID, "detail").text)
        # No script error, no failed request on the page.
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        self.assertEqual(errors, [])
        shot = os.environ.get("MESHWORK_SCREENSHOT")
        if shot:
            wait.until(lambda d: self.click_job(d, long_job["id"]))
            WebDriverWait(driver, scaled(30), poll_frequency=0.2).until(
                lambda d: "takes over" in d.find_element(By.ID, "detail").text)
            driver.save_screenshot(shot)


if __name__ == "__main__":
    unittest.main()
