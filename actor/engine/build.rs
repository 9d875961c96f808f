//! Embeds libtorch's folder as the binaries' runpath, so the engine's test binaries run
//! without LD_LIBRARY_PATH (which still takes precedence, e.g. on a machine with another torch).

fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
