"""Drives the console in a real browser: Debian's chromium, headless, with
Selenium and the driver given explicitly (/usr/bin/chromedriver; Selenium
Manager cannot download anything here).

    console_browser.py --console URL --out DIR --dead ID --credential NAME

Signs in through the test IdP's login page (tests/py/saml_idp.py) as
alice, checks the overview and its charts, finds the dead letter ID in the
queue, retries it (through the confirmation page) and waits until the
audit log shows it delivered, suspends the credential NAME, signs out.
Saves a screenshot of each page in DIR. Prints "OK" at the end; any
failed check raises (exit status 1) with what was on the page.
"""

import argparse
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--disable-gpu", "--window-size=1280,1000", "--no-first-run"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--console", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dead", required=True)
    p.add_argument("--credential", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    d = browser()
    d.set_page_load_timeout(30)
    shot = lambda name: d.save_screenshot(os.path.join(a.out, name + ".png"))

    def check(cond, what):
        if not cond:
            shot("failure")
            raise AssertionError(f"{what}; at {d.current_url}:\n{d.page_source[:4000]}")

    def wait_for(cond, what, timeout=15):
        """Polls `cond` (a click returns before the next page is there)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if cond():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        check(False, what)

    def click_and_wait(elem, url_part, what):
        old = d.find_element(By.TAG_NAME, "html")
        elem.click()
        wait_for(lambda: url_part in d.current_url and d.find_element(By.TAG_NAME, "html") != old, what)

    try:
        # Sign in: the console's sign-in page, the IdP's login form, the
        # IdP's page that posts the response back.
        d.get(a.console + "/console/")
        check("/console/signin" in d.current_url, "not sent to the sign-in page")
        shot("01-signin")
        click_and_wait(d.find_element(By.ID, "sso"), "/sso", "not on the IdP's login page")
        d.find_element(By.ID, "username").send_keys("alice")
        d.find_element(By.ID, "password").send_keys("pw-alice")
        shot("02-idp-login")
        click_and_wait(d.find_element(By.ID, "signin"), "/login", "the IdP did not sign in")
        click_and_wait(d.find_element(By.ID, "continue"), "/console/", "not on the overview after sign-in")
        check("alice (admin)" in d.page_source, "overview does not show who is signed in")

        # The charts are images that loaded (the session cookie went along).
        for chart in ("chart-hour", "chart-day"):
            img = d.find_element(By.ID, chart)
            loaded = d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
            check(loaded and loaded > 0, f"{chart} did not load")
        shot("03-overview")

        # The dead letter in the queue, then its page.
        # Polled: right after the overview (charts still loading) `get` has
        # returned once before the queue page was in (seen in CI).
        d.get(a.console + "/console/queue?state=dead")
        wait_for(lambda: a.dead in d.page_source, "the dead letter is not in the queue")
        shot("04-queue")
        click_and_wait(d.find_element(By.LINK_TEXT, a.dead), "/console/message/", "no message page")
        check("bad recipient" in d.page_source, "the message page lacks its history")
        shot("05-message")

        # Retry, confirmed; then the audit log shows it delivered.
        click_and_wait(d.find_element(By.ID, "do-retry"), "/console/confirm", "no confirmation page")
        shot("06-confirm")
        click_and_wait(d.find_element(By.ID, "confirm"), "/console/message/", "retry did not return to the message")
        deadline = time.time() + 30
        while True:
            d.get(a.console + "/console/audit?queue_id=" + a.dead + "&event=delivered")
            if "delivered" in d.find_element(By.TAG_NAME, "table").text:
                break
            check(time.time() < deadline, "the retried message was not delivered")
            time.sleep(0.5)
        shot("07-audit-delivered")

        # Suspend the credential, with a duration and reason.
        d.get(a.console + "/console/credentials")
        shot("08-credentials")
        click_and_wait(d.find_element(By.CSS_SELECTOR, f"#cred-{a.credential} a[href*='action=suspend']"),
                       "/console/confirm", "no suspend confirmation")
        d.find_element(By.NAME, "duration").send_keys("2h")
        d.find_element(By.NAME, "reason").send_keys("browser test")
        shot("09-suspend")
        click_and_wait(d.find_element(By.ID, "confirm"), "/console/credentials", "suspend did not return to credentials")
        row = d.find_element(By.ID, "cred-" + a.credential).text
        check("suspended" in row and "browser test" in row, "the credential is not shown suspended")
        shot("10-suspended")

        d.get(a.console + "/console/config")
        shot("11-config")

        # Sign out: back to the sign-in page, and the console is closed.
        click_and_wait(d.find_element(By.CSS_SELECTOR, "header form button"), "/console/signin",
                       "sign-out did not end on the sign-in page")
        d.get(a.console + "/console/")
        check("/console/signin" in d.current_url, "the console is open after sign-out")
        shot("12-signed-out")
    finally:
        d.quit()
    print("OK")


if __name__ == "__main__":
    sys.exit(main())
