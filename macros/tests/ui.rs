//! Compile-time checks of #[kafka_listener]: each file in ui/ is one mistake, with the error the compiler must
//! give (`*.stderr`); `pass_*.rs` must compile.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
