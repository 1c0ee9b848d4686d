use super::*;

#[test]
fn offsets_map_to_lines_and_columns() {
    let f = path_arc(Path::new("/x.toml"));
    let src = "a = 1\nbb = 2\n";
    assert_eq!(Loc::from_offset(&f, src, 0).to_string(), "/x.toml:1:1");
    assert_eq!(Loc::from_offset(&f, src, 6).to_string(), "/x.toml:2:1");
    assert_eq!(Loc::from_offset(&f, src, 11).to_string(), "/x.toml:2:6");
}

#[test]
fn table_at_finds_enclosing_header() {
    let src = "[server]\na=1\n[credentials.erp]\nb=2\n";
    assert_eq!(table_at(src, 2), "server");
    assert_eq!(table_at(src, 4), "credentials.erp");
    assert_eq!(table_at("x=1", 1), "");
}
