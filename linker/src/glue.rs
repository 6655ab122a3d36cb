//! The glue object: generated per image with cranelift for the image's architecture. It
//! defines the strong `uniklink_start`, which calls the live components' inits in dependency
//! order, each followed by the runtime's boot-timeline stamp, and then hands over to the
//! runtime's `main` entry, overriding the runtime's weak default (the init-array walk). It
//! also defines one read-only symbol per resolved component parameter, the memory reserved
//! by size parameters, the names of the components whose inits it calls and the platform's
//! boot-timer address.
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

/// The start routine the runtime calls once it is set up.
pub const START_SYMBOL: &str = "uniklink_start";
/// The runtime's stamp for the boot timeline, which `uniklink_start` calls after each init.
pub const STAMP_INIT_SYMBOL: &str = "unik_rt_stamp_init";
/// The runtime's hand-over to the app (ready marker, then main), which `uniklink_start`
/// calls last.
pub const ENTER_MAIN_SYMBOL: &str = "unik_rt_enter_main";
/// The app's entry, which the runtime calls once the inits have run.
pub const MAIN_SYMBOL: &str = "__unik_main";
/// Text lines the runtime prints in verbose mode: which components are live and why, and
/// the parameter values. `REPORT_LEN_SYMBOL` is its length as a little-endian u64.
pub const REPORT_SYMBOL: &str = "__uniklink_report";
pub const REPORT_LEN_SYMBOL: &str = "__uniklink_report_len";
/// The components whose inits `uniklink_start` calls, in order, separated by spaces, for the
/// boot timeline; `INIT_NAMES_LEN_SYMBOL` is its length as a little-endian u64.
pub const INIT_NAMES_SYMBOL: &str = "__uniklink_init_names";
pub const INIT_NAMES_LEN_SYMBOL: &str = "__uniklink_init_names_len";
/// Where the runtime writes the platform's boot-timer byte when `main` starts, as a
/// little-endian u64; 0 for a platform without one.
pub const BOOT_TIMER_SYMBOL: &str = "__uniklink_boot_timer";
/// What the glue object defines whatever it holds; besides these it defines the parameters
/// and reserves of [`GlueSpec`].
pub const FIXED_SYMBOLS: [&str; 6] = [
    START_SYMBOL,
    REPORT_SYMBOL,
    REPORT_LEN_SYMBOL,
    INIT_NAMES_SYMBOL,
    INIT_NAMES_LEN_SYMBOL,
    BOOT_TIMER_SYMBOL,
];
/// What the glue object calls besides the inits of [`GlueSpec`].
pub const RUNTIME_SYMBOLS: [&str; 2] = [STAMP_INIT_SYMBOL, ENTER_MAIN_SYMBOL];
/// Reserved memory is page-aligned.
const RESERVE_ALIGN: u64 = 4096;
/// The file name the glue object goes by in messages.
pub const GLUE_NAME: &str = "uniklink-glue.o";

/// One parameter value as stored in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueParam {
    pub symbol: String,
    /// Little endian; the alignment is the length.
    pub bytes: Vec<u8>,
}

/// Zero-filled memory a size parameter reserves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueReserve {
    pub symbol: String,
    pub size: u64,
}

/// One init `uniklink_start` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueInit {
    /// The component it initialises, as the boot timeline names it.
    pub component: String,
    pub function: String,
}

/// What the glue object contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueSpec {
    /// In the order they run.
    pub inits: Vec<GlueInit>,
    pub params: Vec<GlueParam>,
    pub reserves: Vec<GlueReserve>,
    /// Lines for [`REPORT_SYMBOL`], each ending in `\n`.
    pub report: String,
    /// For [`BOOT_TIMER_SYMBOL`]: 0 for none.
    pub boot_timer: u64,
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
    let mut declare = |name: &str| {
        module
            .declare_function(name, Linkage::Import, &void)
            .map_err(codegen)
    };
    let stamp = declare(STAMP_INIT_SYMBOL)?;
    let mut callees = Vec::new();
    for init in &spec.inits {
        callees.push(declare(&init.function)?);
        callees.push(stamp);
    }
    callees.push(declare(ENTER_MAIN_SYMBOL)?);

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

    let init_names = spec
        .inits
        .iter()
        .map(|init| init.component.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let report_len = (spec.report.len() as u64).to_le_bytes();
    let init_names_len = (init_names.len() as u64).to_le_bytes();
    let boot_timer = spec.boot_timer.to_le_bytes();
    let data_objects = spec
        .params
        .iter()
        .map(|p| (p.symbol.as_str(), &p.bytes[..], p.bytes.len()))
        .chain([
            (REPORT_SYMBOL, spec.report.as_bytes(), 1),
            (REPORT_LEN_SYMBOL, &report_len[..], 8),
            (INIT_NAMES_SYMBOL, init_names.as_bytes(), 1),
            (INIT_NAMES_LEN_SYMBOL, &init_names_len[..], 8),
            (BOOT_TIMER_SYMBOL, &boot_timer[..], 8),
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
    for reserve in &spec.reserves {
        let id = module
            .declare_data(&reserve.symbol, Linkage::Export, true, false)
            .map_err(codegen)?;
        let size = usize::try_from(reserve.size).map_err(codegen)?;
        let mut data = DataDescription::new();
        data.define_zeroinit(size);
        data.set_align(RESERVE_ALIGN);
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
        let init = |component: &str| GlueInit {
            component: component.into(),
            function: format!("{component}_init"),
        };
        GlueSpec {
            inits: vec![init("clock"), init("heap"), init("net")],
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
            reserves: vec![GlueReserve {
                symbol: "__uniklink_reserve_rt_stack_size".into(),
                size: 0x8000,
            }],
            report: "component net live (reached)\n".into(),
            boot_timer: 0xc000_0000,
        }
    }

    /// The object parses through the analyzer, calls each init and the timeline stamp after
    /// it, then the runtime's hand-over to main, in order; carries the parameter bytes, the
    /// init names and the boot timer, reserves zero-filled memory, and uses only relocations
    /// the `Arch` applies.
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
            let SymbolPlace::Section(text) = start.place() else {
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
                    let name = o.symbols[r.symbol].name;
                    (r.offset, String::from_utf8_lossy(name).into_owned())
                })
                .collect();
            calls.sort();
            let order: Vec<&str> = calls.iter().map(|(_, n)| n.as_str()).collect();
            assert_eq!(
                order,
                [
                    "clock_init",
                    STAMP_INIT_SYMBOL,
                    "heap_init",
                    STAMP_INIT_SYMBOL,
                    "net_init",
                    STAMP_INIT_SYMBOL,
                    ENTER_MAIN_SYMBOL
                ]
            );

            let report = spec().report;
            let mut expected = spec().params;
            expected.push(GlueParam {
                symbol: INIT_NAMES_SYMBOL.into(),
                bytes: b"clock heap net".to_vec(),
            });
            expected.push(GlueParam {
                symbol: BOOT_TIMER_SYMBOL.into(),
                bytes: 0xc000_0000u64.to_le_bytes().to_vec(),
            });
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
                let SymbolPlace::Section(s) = sym.place() else {
                    panic!("{} is not defined in a section", param.symbol);
                };
                let section = o.section(s);
                assert!(section.name.starts_with(b".rodata"));
                let at = sym.value as usize;
                assert_eq!(&section.data[at..at + param.bytes.len()], param.bytes);
            }

            let stack = o
                .symbols
                .iter()
                .find(|s| s.name == b"__uniklink_reserve_rt_stack_size")
                .unwrap();
            assert_eq!((stack.bind, stack.size), (elf::STB_GLOBAL, 0x8000));
            let SymbolPlace::Section(s) = stack.place() else {
                panic!("the reserve is not defined in a section");
            };
            let bss = o.section(s);
            assert!(bss.name.starts_with(b".bss"), "{:?}", bss.name);
            assert_eq!(bss.align, RESERVE_ALIGN);
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
