"use strict";
// "Shared by me": revoking asks first (everyone holding the link loses it).
document.querySelectorAll("form.share-revoke").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
});
