// The login page: posts the credentials; the server sets the HttpOnly session cookie.
"use strict";
document.getElementById("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const body = {
    username: document.getElementById("login-username").value,
    password: document.getElementById("login-password").value,
  };
  try {
    const res = await fetch("/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (res.ok) {
      window.location.assign("/");
      return;
    }
    const data = await res.json().catch(() => ({}));
    error.textContent = data.error || ("sign-in failed (" + res.status + ")");
  } catch (err) {
    error.textContent = "the server cannot be reached";
  }
});
