/* global document */
// OAuth 2.0 Form Post Response Mode: submit the response form as soon as the page has loaded.
// Without JavaScript the page's Continue button does the same.
(function () {
  'use strict';
  var form = document.querySelector('form[data-auto-submit]');
  if (form) form.submit();
})();
