// settings.ini of a run directory or a sweep's trial (train/run_dir.hpp): the options of a parsed command line,
// defaults included, as `key = value` lines that --config reads back into the same values.
#pragma once
#include <boost/program_options.hpp>
#include <set>
#include <string>

namespace ringtrain::cli {

// The options of `vm` in the order `options` lists them, but those in `leave_out`; an option with no value (not
// given, and no default) is left out too. Throws UsageError naming an option whose value an INI line cannot
// hold (a '#', a line break, spaces at its ends).
std::string settings_ini(const boost::program_options::options_description& options,
                         const boost::program_options::variables_map& vm, const std::set<std::string>& leave_out);

}  // namespace ringtrain::cli
