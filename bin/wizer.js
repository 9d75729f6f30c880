#!/usr/bin/env node
// The reference's command line, `wizer [flags] [input]`: `wiz init` without the subcommand.
import { launch } from './launch.js';

launch('wizer');
