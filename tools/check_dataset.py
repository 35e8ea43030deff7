"""Check the train/val data of a config before a long run.

python tools/check_dataset.py CONFIG [--splits train val] [--nproc 8]
    [--cfg-options train_dataloader.dataset.data_root=DIR ...]

Reports missing, unreadable or truncated images and label maps, label maps
whose size differs from their image's, and label values outside the train
ids and the ignore index. Exit code 0 when clean, 1 with the list of
problems, 2 when the config or the data folders cannot be read.
"""
import argparse

from repvgg_seg_cli import add_cfg_options, config_file, positive, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', type=config_file, help='training config')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'],
                        choices=['train', 'val', 'test'],
                        help='data sets to check (default: train val)')
    parser.add_argument('--nproc', type=positive(int), default=8,
                        help='worker processes (default: %(default)s)')
    add_cfg_options(parser, 'train_dataloader.dataset.data_root=DIR')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import check_data
    from repvgg_seg.datasets.check import plural
    from repvgg_seg.utils.text import printable
    problems, counts, seconds = check_data(args.config, args.splits,
                                           args.nproc, args.cfg_options)
    for problem in problems:
        print(printable(problem))  # quotes file names from the data
    checked = ' + '.join(f'{n} {split}' for split, n in counts.items())
    print(f'checked {checked} samples in {seconds:.1f} s: '
          f'{plural(len(problems), "problem") if problems else "no problems"}')
    return 1 if problems else 0


if __name__ == '__main__':
    run_cli(main)
