"use strict";
// "My queries": a delete asks first (a deleted result is gone for every notebook).
document.querySelectorAll("form.delete-result").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
});
