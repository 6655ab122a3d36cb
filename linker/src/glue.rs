//! The glue object: generated per image with cranelift for the image's architecture. It
//! defines the strong `uniklink_start`, which calls the live components' inits in dependency
//! order and then the app's entry, overriding the runtime's weak default (the init-array
//! walk). It also defines one read-only symbol per resolved component parameter.
//!
//! The bytes are an ordinary ELF relocatable object; the pipeline loads them through the
//! same input path as every other object, so nothing about them is trusted.

use cranelift_codegen::Context;
use cranelift_codegen::ir::{Function, InstBuilder, Signature, UserFuncName};
use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, Linkage, Module, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule};
use object::elf;

/// The start routine the runtime calls right before the app's main.
pub const START_SYMBOL: &str = "uniklink_start";
/// The app's entry, which `uniklink_start` calls last.
pub const MAIN_SYMBOL: &str = "__unik_main";
/// Text lines the runtime prints in verbose mode: which components are live and why, and
/// the parameter values. `REPORT_LEN_SYMBOL` is its length as a little-endian u64.
pub const REPORT_SYMBOL: &str = "__uniklink_report";
pub const REPORT_LEN_SYMBOL: &str = "__uniklink_report_len";
/// The file name the glue object goes by in messages.
pub const GLUE_NAME: &str = "uniklink-glue.o";

/// One parameter value as stored in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueParam {
    pub symbol: String,
    /// Little endian; the alignment is the length.
    pub bytes: Vec<u8>,
}

/// What the glue object contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueSpec {
    /// Init functions in the order they run.
    pub inits: Vec<String>,
    pub params: Vec<GlueParam>,
    /// Lines for [`REPORT_SYMBOL`], each ending in `\n`.
    pub report: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GlueError {
    #[error("no glue code generator for machine {0} (e_machine)")]
    Machine(u16),
    #[error("glue object: {0}")]
    Codegen(String),
}

fn codegen(e: impl std::fmt::Display) -> GlueError {
    GlueError::Codegen(e.to_string())
}

/// The target ISA for the image's machine: non-PIC code with direct (colocated) calls, so
/// the object needs only the relocations a static image's `Arch` handles (`R_X86_64_PC32`
/// or `PLT32`, `R_AARCH64_CALL26`).
fn target_isa(machine: u16) -> Result<OwnedTargetIsa, GlueError> {
    let triple = match machine {
        elf::EM_X86_64 => "x86_64-unknown-none-elf",
        elf::EM_AARCH64 => "aarch64-unknown-none-elf",
        other => return Err(GlueError::Machine(other)),
    };
    let mut flags = settings::builder();
    for (name, value) in [
        ("is_pic", "false"),
        ("use_colocated_libcalls", "true"),
        ("opt_level", "speed_and_size"),
    ] {
        flags.set(name, value).map_err(codegen)?;
    }
    isa::lookup_by_name(triple)
        .map_err(codegen)?
        .finish(settings::Flags::new(flags))
        .map_err(codegen)
}

/// Generates the glue object for `machine`.
pub fn generate(machine: u16, spec: &GlueSpec) -> Result<Vec<u8>, GlueError> {
    let isa = target_isa(machine)?;
    let call_conv = isa.default_call_conv();
    let frontend_config = isa.frontend_config();
    let builder = ObjectBuilder::new(isa, GLUE_NAME, default_libcall_names()).map_err(codegen)?;
    let mut module = ObjectModule::new(builder);

    let void = Signature::new(call_conv);
    let start = module
        .declare_function(START_SYMBOL, Linkage::Export, &void)
        .map_err(codegen)?;
    let callees = spec
        .inits
        .iter()
        .map(String::as_str)
        .chain([MAIN_SYMBOL])
        .map(|name| {
            module
                .declare_function(name, Linkage::Import, &void)
                .map_err(codegen)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut func = Function::with_name_signature(UserFuncName::user(0, start.as_u32()), void);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let block = b.create_block();
        b.switch_to_block(block);
        b.seal_block(block);
        for &callee in &callees {
            let fref = module.declare_func_in_func(callee, b.func);
            // Everything ends up in one static image, so every callee is within a direct
            // call's reach; without this cranelift would load a 64-bit absolute address.
            b.func.dfg.ext_funcs[fref].colocated = true;
            b.ins().call(fref, &[]);
        }
        b.ins().return_(&[]);
        b.finalize(frontend_config);
    }
    let mut ctx = Context::for_function(func);
    module
        .define_function(start, &mut ctx)
        .map_err(|e| GlueError::Codegen(format!("{e:?}")))?;

    let report_len = (spec.report.len() as u64).to_le_bytes().to_vec();
    let data_objects = spec
        .params
        .iter()
        .map(|p| (p.symbol.as_str(), &p.bytes[..], p.bytes.len()))
        .chain([
            (REPORT_SYMBOL, spec.report.as_bytes(), 1),
            (REPORT_LEN_SYMBOL, &report_len[..], 8),
        ]);
    for (symbol, bytes, align) in data_objects {
        let id = module
            .declare_data(symbol, Linkage::Export, false, false)
            .map_err(codegen)?;
        let mut data = DataDescription::new();
        data.define(bytes.to_vec().into_boxed_slice());
        data.set_align(align.max(1) as u64);
        module.define_data(id, &data).map_err(codegen)?;
    }

    module.finish().emit().map_err(codegen)
}

#[cfg(test)]
mod tests {
    use uniklink_analyzer::input::InputId;
    use uniklink_analyzer::object::{ObjectId, SymbolPlace, parse};

    use super::*;
    use crate::arch;

    fn spec() -> GlueSpec {
        GlueSpec {
            inits: vec!["clock_init".into(), "heap_init".into(), "net_init".into()],
            params: vec![
                GlueParam {
                    symbol: "__uniklink_param_net_rx_ring".into(),
                    bytes: 256u32.to_le_bytes().to_vec(),
                },
                GlueParam {
                    symbol: "__uniklink_param_fs_write_back".into(),
                    bytes: vec![1],
                },
            ],
            report: "component net live (reached)\n".into(),
        }
    }

    /// The object parses through the analyzer, calls the inits then the app's entry in
    /// order, carries the parameter bytes, and uses only relocations the `Arch` applies.
    #[test]
    fn glue_object_for_each_architecture() {
        for machine in [elf::EM_X86_64, elf::EM_AARCH64] {
            let bytes = generate(machine, &spec()).unwrap();
            let o = parse(ObjectId(0), InputId(0), GLUE_NAME.into(), false, &bytes).unwrap();
            assert_eq!(o.machine, machine);
            let arch = arch::for_machine(machine).unwrap();

            let start = o
                .symbols
                .iter()
                .find(|s| s.name == START_SYMBOL.as_bytes())
                .unwrap();
            assert_eq!(
                (start.bind, start.st_type),
                (elf::STB_GLOBAL, elf::STT_FUNC)
            );
            let SymbolPlace::Section(text) = start.place else {
                panic!("{START_SYMBOL} is not defined in a section");
            };
            let mut calls: Vec<(u64, String)> = o
                .section(text)
                .relocs()
                .map(|r| {
                    assert!(
                        arch.reloc_name(r.r_type).is_some(),
                        "{}: relocation type {} unsupported",
                        arch.name(),
                        r.r_type
                    );
                    let name = o.symbols[r.symbol as usize].name;
                    (r.offset, String::from_utf8_lossy(name).into_owned())
                })
                .collect();
            calls.sort();
            let order: Vec<&str> = calls.iter().map(|(_, n)| n.as_str()).collect();
            assert_eq!(order, ["clock_init", "heap_init", "net_init", MAIN_SYMBOL]);

            let report = spec().report;
            let mut expected = spec().params;
            expected.push(GlueParam {
                symbol: REPORT_SYMBOL.into(),
                bytes: report.as_bytes().to_vec(),
            });
            expected.push(GlueParam {
                symbol: REPORT_LEN_SYMBOL.into(),
                bytes: (report.len() as u64).to_le_bytes().to_vec(),
            });
            for param in &expected {
                let sym = o
                    .symbols
                    .iter()
                    .find(|s| s.name == param.symbol.as_bytes())
                    .unwrap();
                assert_eq!(sym.bind, elf::STB_GLOBAL);
                let SymbolPlace::Section(s) = sym.place else {
                    panic!("{} is not defined in a section", param.symbol);
                };
                let section = o.section(s);
                assert!(section.name.starts_with(b".rodata"));
                let at = sym.value as usize;
                assert_eq!(&section.data[at..at + param.bytes.len()], param.bytes);
            }
        }
    }

    #[test]
    fn unknown_machine_is_an_error() {
        let err = generate(elf::EM_RISCV, &spec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no glue code generator for machine 243 (e_machine)"
        );
    }
}
