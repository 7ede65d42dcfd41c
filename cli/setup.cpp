#include "setup.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <string_view>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "report_error.hpp"
#include "upframe/error.hpp"
#include "upframe/log.hpp"
#include "upframe/pipeline/job.hpp"

namespace upframe::cli {

namespace {

std::string flag_list(const SettingSpec& spec) {
  std::string flags = spec.short_flag.empty() ? "" : spec.short_flag + ",";
  flags += flag_name(spec);
  // Booleans get a --no- form, except those whose name already says "no".
  if (spec.kind == SettingKind::kBool && spec.short_flag.empty() && !spec.key.starts_with("no_"))
    flags += ",!--no-" + flag_name(spec).substr(2);
  return flags;
}

// How --help shows a setting's value after its flag: the choices ("auto|cpu|cuda"), a range
// ("1..16"), "N|auto", or what kind of value it is.
std::string value_form(const SettingSpec& spec) {
  using K = SettingKind;
  switch (spec.kind) {
    case K::kChoice: {
      std::vector<std::string> choices;
      for (const std::string& c : spec.choices)
        if (!c.empty()) choices.push_back(c);
      return CLI::detail::join(choices, "|");
    }
    case K::kInt:
      return spec.max >= (1L << 30) ? "N"
                                    : std::to_string(spec.min) + ".." + std::to_string(spec.max);
    case K::kIntOrAuto:
      return "N|auto";
    case K::kDouble:
      return "NUMBER";
    case K::kString:
      return "NAME";
    case K::kPath:
      return "PATH";
    case K::kBool:
      break;
  }
  return {};
}

class HelpFormatter : public CLI::Formatter {
 public:
  // "--parallel,--no-parallel" (CLI11 would add "{false}" to the negative form).
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    std::string name = CLI::Formatter::make_option_name(opt, is_positional);
    for (size_t at; (at = name.find("{false}")) != std::string::npos;) name.erase(at, 7);
    return name;
  }
  std::string make_option_opts(const CLI::Option* opt) const override {
    std::string out;
    if (opt->get_type_size() != 0 && !opt->get_type_name().empty())
      out += " " + opt->get_type_name();
    if (opt->get_required()) out += " " + get_label("REQUIRED");
    return out;
  }
  std::string make_option_desc(const CLI::Option* opt) const override {
    std::string desc = opt->get_description();
    if (!opt->get_default_str().empty()) desc += " [default: " + opt->get_default_str() + "]";
    return desc;
  }
};

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The app's long flag nearest `arg` ("--scael" -> "--scale"), if one is close enough to be
// a typo: at most a third of the flag's letters differ.
std::string nearest_flag(const CLI::App& app, const std::string& arg) {
  const std::string typed = arg.substr(0, arg.find('='));
  std::string best;
  size_t best_distance = typed.size() / 3 + 1;
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames()) {
      const size_t distance = edit_distance(typed, "--" + name);
      if (distance < best_distance) best_distance = distance, best = "--" + name;
    }
  }
  return best;
}

void on_stop_signal(int sig) { request_stop(sig); }

}  // namespace

void use_help_style(CLI::App& app) {
  app.formatter(std::make_shared<HelpFormatter>());
  app.get_formatter()->column_width(40);
}

void add_setting_flags(CLI::App& app, GivenSettings& given, std::string& config_file) {
  app.add_option("--config", config_file, "TOML config file")
      ->type_name("FILE")
      ->default_str("./upframe.toml if present");
  for (const SettingSpec& spec : setting_specs()) {
    CLI::Option* option = nullptr;
    if (spec.kind == SettingKind::kBool) {
      option = app.add_flag_function(
          flag_list(spec),
          [&given, key = spec.key](int64_t count) {
            given.emplace_back(key, count > 0 ? "true" : "false");
          },
          spec.help);
    } else {
      option =
          app.add_option_function<std::string>(
                 flag_list(spec),
                 [&given, key = spec.key](const std::string& v) { given.emplace_back(key, v); },
                 spec.help)
              ->type_name(value_form(spec));
    }
    option->default_str(default_text(spec.key));
  }
}

int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ExtrasError& e) {
    std::string text = e.what();
    for (const std::string& extra : app.remaining()) {
      if (!extra.starts_with("--")) continue;
      if (const std::string flag = nearest_flag(app, extra); !flag.empty()) {
        text = "unknown option " + extra + ": did you mean " + flag + "?";
        break;
      }
    }
    print_error(text);
    return int(ExitCode::kUsage);
  } catch (const CLI::ParseError& e) {
    print_error(e.what());
    return int(ExitCode::kUsage);
  }
  return -1;
}

std::string load_settings(Settings& settings, const std::string& config_file,
                          const GivenSettings& given) {
  std::string used = config_file;
  if (!config_file.empty()) {
    apply_config_file(settings, config_file);
  } else if (auto found = default_config_file()) {
    apply_config_file(settings, *found);
    used = found->string();
  }
  for (const auto& [key, value] : given) set_setting(settings, key, value, kCommandLine);
  return used;
}

void set_up_console(bool quiet) {
  auto logger = spdlog::stderr_color_mt("upframe");
  logger->set_pattern("upframe: %^%l%$: %v");
  spdlog::set_default_logger(logger);
  // UPFRAME_LOG=debug shows what the console leaves out (libav's decoder messages, why no
  // GPU is used, timings of each step).
  const char* asked = std::getenv("UPFRAME_LOG");
  const bool debug = asked && std::string_view(asked) == "debug";
  set_log_level(quiet ? LogLevel::kError : debug ? LogLevel::kDebug : LogLevel::kInfo);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

}  // namespace upframe::cli
