// From file:// a page may not fetch another (Chromium refuses), so there search lists its
// results without the excerpt it would read from each page; over HTTP it shows them.
if (window.location.protocol === "file:") {
  DOCUMENTATION_OPTIONS.SHOW_SEARCH_SUMMARY = false;
}
