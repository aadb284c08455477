// scanlogin mini program. The only page is pages/login/index, opened by scanning the
// code a website shows; see README.md.
App({});
