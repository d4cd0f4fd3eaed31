// tiercare web app: Case-based payment: DIP, DRG and the global budget (issue 9). Pages defined through the shell's
// `tiercare.define` (see app.js, "capability parts"); strings in zh and en.
'use strict';
(function () {
  const { t, h, page } = window.tiercare.kit; // eslint-disable-line no-unused-vars
  window.tiercare.define({
    dict: { zh: {}, en: {} },
    pages: [],
  });
})();
