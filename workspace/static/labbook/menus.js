/* Top-bar menus (<details class="menu">): Escape or a click elsewhere closes an open menu. */
(function () {
  "use strict";
  function openMenus() {
    return document.querySelectorAll("details.menu[open]");
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    openMenus().forEach(function (menu) {
      menu.open = false;
      menu.querySelector("summary").focus();
    });
  });
  document.addEventListener("click", function (event) {
    openMenus().forEach(function (menu) {
      if (!menu.contains(event.target)) menu.open = false;
    });
  });
})();
