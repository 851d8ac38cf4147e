// Where the Coffer API lives. A `?api=` query parameter overrides it (handy in development);
// a deployed copy should set its API here and may remove that override in app.js.
window.COFFER_CONFIG = {
  apiBase: "http://127.0.0.1:8000",
};
