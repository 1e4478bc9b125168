// Shows the service health, logs in and displays the wallet.
"use strict";

// The release's notice (src/notice.txt, if any), filled in by build.py.
const NOTICE = "{{notice}}";

async function getJson(path, token) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers });
  return { status: response.status, body: await response.json() };
}

async function showHealth() {
  const { status, body } = await getJson("/health");
  document.getElementById("status").textContent =
    status === 200
      ? "healthy, version " + body.version + (NOTICE ? " (" + NOTICE + ")" : "")
      : "unhealthy";
}

async function login(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: form.get("email"), password: form.get("password") }),
  });
  const body = await response.json();
  const wallet = response.ok ? (await getJson("/wallet", body.token)).body : body;
  document.getElementById("wallet").textContent = JSON.stringify(wallet, null, 2);
}

document.getElementById("login").addEventListener("submit", login);
showHealth();
